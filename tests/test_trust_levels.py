"""Issue #25, "one level identity": grouping levels are read exactly and mean the same in fit,
fitted, predict and ranef; level-dependent functions use the levels of all the data on every
source; formula constructs R accepts (NA, multivariate poly, bs beyond its boundary, deep
nesting) work as in R or are refused by name.

Independent truths: hand counts of distinct ids, numpy least squares on a hand-built matrix, R
(``Rscript``: factor levels, model.frame row counts, model.matrix columns, predict of a bs basis).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from hiermio.formula.design import build_design
from hiermio.core.exceptions import DataError, FormulaError

needs_rscript = pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript is not available")


def _r(code: str) -> str:
    """What Rscript prints for ``code``."""
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def _r_numbers(code: str) -> np.ndarray:
    """Numbers R writes with ``cat(format(x, digits = 17))``."""
    return np.array(_r(f"cat(format({code}, digits = 17), sep = '\\n')").split(), dtype=float)


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ------------------------------------------------------------------ case 6: levels of all the data
def _levels_data(n: int = 240, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.choice(list("abcd"), n)
    f[: n // 3] = rng.choice(list("bd"), n // 3)  # the first chunk lacks "a" and "c": its own codes differ
    f[-10:] = "e"  # a level present only in the last chunk
    g = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    code = pd.Series(f).map({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}).to_numpy()
    y = 0.7 * code + x + np.where(g < 3, 2.0, 0.0) + rng.normal(size=n)
    h = np.where(np.arange(n) < n // 2, rng.choice(["lo", "mid"], n), rng.choice(["hi", "lo"], n))
    return pd.DataFrame({"y": y, "x": x, "f": f, "g": [f"k{v}" for v in g], "h": h})


LEVEL_FORMULAS = [
    "y ~ x + factor(f) + (1 | g)",
    "y ~ x + as.numeric(factor(f)) + (1 | g)",
    "y ~ x + as.integer(factor(f)) + (1 | g)",
    "y ~ x + as.numeric(ordered(f)) + (1 | g)",
    'y ~ x + relevel(factor(f), ref = "c") + (1 | g)',
    'y ~ x + relevel(f, ref = "c") + (1 | g)',
    "y ~ x + as.numeric(interaction(f, h)) + C(f, sum) + (1 | g)",
]


@pytest.mark.parametrize("formula", LEVEL_FORMULAS)
def test_level_functions_give_one_objective_on_every_source(formula, tmp_path):
    df = _levels_data()
    chunks = [df.iloc[:80], df.iloc[80:160], df.iloc[160:]]
    assert "c" not in set(chunks[0].f) and set(chunks[2].f) >= {"e"} and "e" not in set(df.f[:160])
    for i, c in enumerate(chunks):
        c.to_parquet(tmp_path / f"part-{i}.parquet")
    with _quiet():
        whole = hm.fit(formula, df, budget=3)
        sources = {"chunks": chunks, "parquet": str(tmp_path)}
        dd = pytest.importorskip("dask.dataframe")
        sources["dask"] = dd.from_pandas(df, npartitions=3, sort=False)
        fits = {name: hm.fit(formula, src, budget=3) for name, src in sources.items()}
    # the truth for the codes: R's factor(f) levels of all the data are a < b < c < d < e, so
    # as.numeric(factor(f)) is 1..5; its least-squares coefficient with the same support
    if "(factor(f))" in formula or "(ordered(f))" in formula:
        code = df.f.map({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}).to_numpy(float)
        Z = pd.get_dummies(df.g).to_numpy(float)[:, [whole.design.terms[0].levels.get_loc(k)
                                                     for k in whole.selected["(1 | g)"]]]
        X = np.column_stack([np.ones(len(df)), df.x, code, Z])
        beta = np.linalg.lstsq(X, df.y.to_numpy(), rcond=None)[0]
        assert whole.fixef().iloc[2] == pytest.approx(beta[2], rel=1e-8)
    for name, f in fits.items():
        assert f.certificate.primal == pytest.approx(whole.certificate.primal, rel=1e-10, abs=1e-10), name
        assert f.design.fixed_names == whole.design.fixed_names, name
        np.testing.assert_allclose(f.beta, whole.beta, rtol=1e-8, atol=1e-10)


def test_relevel_reference_is_first_in_every_source():
    df = _levels_data()
    with _quiet():
        parts = hm.fit('y ~ x + relevel(factor(f), ref = "c") + (1 | g)', [df.iloc[:80], df.iloc[80:]], budget=2)
    assert parts.design.fixed_names[2:] == tuple(f'relevel(factor(f), ref = "c"){v}' for v in "abde")


def test_predict_codes_new_rows_on_the_training_levels():
    """as.numeric(factor(f)) on one new row is its code among all training levels (here 5 for "e"),
    not 1 (the new frame's own single level)."""
    df = _levels_data()
    with _quiet():
        fit = hm.fit("y ~ x + as.numeric(factor(f)) + (1 | g)", df, budget=2)
    row = df[df.f == "e"].head(1)
    b = fit.fixef()
    expected = b["(Intercept)"] + b["x"] * row.x.iloc[0] + b["as.numeric(factor(f))"] * 5
    assert fit.predict(row, re_form="~0").iloc[0] == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ case 3: integer ids above 2**53
BIG = [1234567890123456768 + 1, 1234567890123456768 + 2, 5, 7]  # the first two are one double apart from neither


def _id_data(ids, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(4), 6)
    x = rng.normal(size=24)
    y = x + np.array([3.0, -3.0, 0.0, 0.5])[g] + 0.1 * rng.normal(size=24)
    return pd.DataFrame({"y": y, "x": x, "g": [ids[k] for k in g]})


@pytest.mark.parametrize("dtype", ["int64", "uint64", "Int64", "object"])
def test_integer_ids_above_2_53_stay_apart(dtype):
    ids = BIG if dtype != "uint64" else [2**64 - 3, 2**64 - 2, 5, 7]
    df = _id_data(ids)
    df["g"] = pd.Series(df.g.tolist(), dtype=dtype) if dtype != "object" else pd.Series(df.g.tolist(), dtype=object)
    assert len(set(df.g.tolist())) == 4  # the truth: four distinct ids
    with _quiet():
        fit = hm.fit("y ~ x + (1 | g)", df, budget=2)
    levels = fit.design.terms[0].levels.tolist()
    assert sorted(levels) == sorted(ids) and all(type(v) is int for v in levels)
    assert list(fit.design.terms[0].level_strings) == [str(v) for v in sorted(ids)]
    assert sorted(fit.selected["(1 | g)"]) == sorted(ids[:2])  # the two big ids carry the effects +-3
    np.testing.assert_allclose(fit.predict(df).to_numpy(), fit.fitted().to_numpy(), rtol=1e-12)
    assert sorted(fit.ranef()["g"].index.tolist()) == sorted(ids)


def test_factor_of_big_integer_ids_in_the_fixed_part_keeps_them_apart():
    df = _id_data(BIG)
    d = build_design("y ~ factor(g) + (1 | x)", df.assign(x=np.arange(24) % 3))
    assert d.fixed_names == ("(Intercept)", "factor(g)7", "factor(g)1234567890123456769", "factor(g)1234567890123456770")


def test_cli_fit_keeps_big_ids_apart(tmp_path, capsys):
    from hiermio.cli import main

    path = tmp_path / "ids.csv"
    _id_data(BIG).to_csv(path, index=False)
    assert main(["fit", "y ~ x + (1 | g)", str(path), "--budget", "2"]) == 0
    out = capsys.readouterr().out
    assert "groups:  g, 4" in out
    assert "1234567890123456769" in out and "1234567890123456770" in out and "1234567890123456768" not in out


# ------------------------------------------------------------------ case 4: float ids as R spells them
@needs_rscript
def test_float_ids_spelled_alike_are_one_level_as_in_r():
    df = pd.DataFrame({"g": np.repeat([0.1 + 0.2, 0.3, 0.5, 0.7], 5)})
    rng = np.random.default_rng(1)
    df["x"] = rng.normal(size=20)
    df["y"] = df.x + np.repeat([5.0, -5.0, 0.0, 1.0], 5)
    r_levels = _r('cat(levels(factor(c(0.1 + 0.2, 0.3, 0.5, 0.7))), sep = "\\n")').split()
    assert r_levels == ["0.3", "0.5", "0.7"]
    with pytest.warns(hm.HierMIOWarning, match=r"'g' .*: 4 distinct numbers make 3 levels, since R spells them alike"):
        fit = hm.fit("y ~ x + (1 | g)", df, budget=2)
    assert list(fit.design.terms[0].level_strings) == r_levels
    np.testing.assert_allclose(fit.predict(df).to_numpy(), fit.fitted().to_numpy(), rtol=1e-12)
    assert fit.ranef()["g"].shape[0] == 3
    # the level "0.3" holds the ten rows of both spellings: its effect is their mean residual
    sel = fit.selected["(1 | g)"]
    assert len(sel) == 2 and 0.3 in sel


# ------------------------------------------------------------------ text ids: a factor, whatever its spelling
def test_text_ids_with_a_letter_are_a_grouping_factor():
    ids = [str(i) for i in range(1, 10)] + ["A7"]
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"g": pd.array(np.repeat(ids, 3), dtype="string"), "x": rng.normal(size=30)})
    df["y"] = df.x + np.where(df.g == "A7", 4.0, 0.0) + 0.1 * rng.normal(size=30)
    with _quiet():
        fit = hm.fit("y ~ x + (1 | g)", df, budget=1)
    assert fit.design.terms[0].levels.tolist() == ids  # R's order: digits before letters
    assert fit.selected["(1 | g)"] == ["A7"]
    # the fixed part still refuses a column of numbers with one stray text
    with pytest.raises(DataError, match="column 'g' is mostly numbers but holds text such as 'A7'"):
        build_design("y ~ g + (1 | x)", df.assign(x=np.arange(30) % 3))


# ------------------------------------------------------------------ predict on zero rows
def test_predict_on_an_empty_frame_is_an_empty_series(sleepstudy):
    fit = hm.fit("Reaction ~ Days + (1 | Subject)", sleepstudy, budget=2)
    out = fit.predict(sleepstudy.iloc[:0])
    assert isinstance(out, pd.Series) and len(out) == 0 and out.name == "predicted"


# ------------------------------------------------------------------ NA constants
@needs_rscript
def test_na_in_ifelse_drops_rows_as_r_model_frame():
    x = [-1.5, 2.0, -3.0, 4.0, 5.0, 0.5, -0.2, 1.1, 2.2, -4.0, 3.3, 0.7]
    df = pd.DataFrame({"x": x, "y": np.arange(12.0) ** 1.3, "g": list("abc") * 4})
    r_rows = int(_r(f"d <- data.frame(x = c({', '.join(map(str, x))}), y = (0:11)^1.3); "
                    "cat(nrow(model.frame(y ~ ifelse(x > 0, x, NA), d)))"))
    with _quiet():
        d = build_design("y ~ ifelse(x > 0, x, NA) + (1 | g)", df)
        d_real = build_design("y ~ ifelse(x > 0, x, NA_real_) + (1 | g)", df)
    assert d.n == r_rows == 8 and d.n_dropped == 4 and d_real.n == r_rows
    kept = df[df.x > 0]
    np.testing.assert_allclose(d.X[:, 1], kept.x.to_numpy())
    with _quiet():
        dc = build_design('y ~ ifelse(x > 0, ifelse(x > 2, "big", "small"), NA_character_) + (1 | g)', df)
    assert dc.n == 8 and dc.fixed_names[1].endswith("small")


# ------------------------------------------------------------------ deep nesting
def test_moderate_nesting_is_read_and_deep_nesting_refused_by_name(sleepstudy):
    ok = "Reaction ~ " + "(" * 100 + "Days" + ")" * 100 + " + (1 | Subject)"
    deep_i = "Reaction ~ " + "I(" * 90 + "Days" + ")" * 90 + " + (1 | Subject)"
    base = hm.fit("Reaction ~ Days + (1 | Subject)", sleepstudy, budget=2)
    for formula in (ok, deep_i):
        fit = hm.fit(formula, sleepstudy, budget=2)
        assert fit.certificate.primal == pytest.approx(base.certificate.primal, rel=1e-12)
        np.testing.assert_allclose(fit.predict(sleepstudy).to_numpy(), base.predict(sleepstudy).to_numpy())
    for formula in ("Reaction ~ " + "(" * 500 + "Days" + ")" * 500 + " + (1 | Subject)",
                    "Reaction ~ " + "I(" * 500 + "Days" + ")" * 500 + " + (1 | Subject)"):
        with pytest.raises(FormulaError, match="formula nested too deeply: more than 100 levels of parentheses"):
            hm.fit(formula, sleepstudy, budget=2)
    with pytest.raises(FormulaError, match="formula nested too deeply"):
        hm.parse_formula("y ~ " + "-" * 3000 + "x")


# ------------------------------------------------------------------ case 5: poly() of several variables
def _poly_data(n: int = 40, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n).round(6), "z": rng.normal(size=n).round(6), "g": np.arange(n) % 4})
    df["y"] = df.x - df.x * df.z + 0.5 * df.z**2 + rng.normal(size=n)
    return df


def _r_frame(df: pd.DataFrame) -> str:
    return "data.frame(" + ", ".join(f"{c} = c({', '.join(repr(float(v)) for v in df[c])})" for c in df.columns) + ")"


@needs_rscript
@pytest.mark.parametrize("call", ["poly(x, z, degree = 2)", "poly(x, z, degree = 3, raw = TRUE)"])
def test_poly_of_two_variables_is_r_model_matrix_on_training_and_new_data(call):
    df = _poly_data()
    new = pd.DataFrame({"x": [0.1, 3.0, -2.0], "z": [1.0, -0.5, 4.0], "g": [0, 1, 2]})
    r_code = (f"d <- {_r_frame(df[['x', 'z', 'y']])}; nd <- {_r_frame(new[['x', 'z']])}; "
              f"m <- lm(y ~ {call}, d); tt <- delete.response(terms(m)); "
              "X <- model.matrix(m); N <- model.matrix(tt, model.frame(tt, nd)); "
              "cat(colnames(X), sep = '\\n'); cat('--\\n'); cat(format(c(t(X), t(N)), digits = 17), sep = '\\n')")
    out = _r(r_code).split("--\n")
    names = out[0].split("\n")[:-1]
    numbers = np.array(out[1].split(), dtype=float)
    X_r, N_r = numbers[: len(df) * len(names)].reshape(len(df), -1), numbers[len(df) * len(names):].reshape(3, -1)
    d = build_design(f"y ~ {call} + (1 | g)", df)
    assert list(d.fixed_names) == names and len(names) == (6 if "raw" not in call else 10)
    np.testing.assert_allclose(d.X, X_r, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d.fixed_matrix(new), N_r, rtol=1e-9, atol=1e-12)


def test_poly_of_two_variables_in_chunks_gives_the_in_memory_fit():
    df = _poly_data(200)
    formula = "y ~ poly(x, z, degree = 2) + (1 | g)"
    with _quiet():
        whole = hm.fit(formula, df, budget=2)
        parts = hm.fit(formula, [df.iloc[:70], df.iloc[70:]], budget=2)
    assert parts.design.fixed_names == whole.design.fixed_names
    assert parts.certificate.primal == pytest.approx(whole.certificate.primal, rel=1e-9)
    np.testing.assert_allclose(parts.beta, whole.beta, rtol=1e-7)


def test_poly_refuses_coefs_given_in_the_formula():
    with pytest.raises(FormulaError, match="poly\\(\\)'s coefs= cannot be given in a formula"):
        build_design("y ~ poly(x, coefs = 2) + (1 | g)", _poly_data())


# ------------------------------------------------------------------ bs() beyond its boundary knots
@needs_rscript
def test_bs_with_a_knot_at_the_boundary_predicts_as_r_and_refuses_where_r_has_nan():
    x = np.linspace(0, 100, 40)
    df = pd.DataFrame({"x": x, "g": np.arange(40) % 4})
    df["y"] = np.sin(x / 20) + 0.01 * x
    call = "bs(x, knots = c(100))"
    new = pd.DataFrame({"x": [-10.0, 25.0, 50.0], "g": [0, 1, 2]})
    r = _r_numbers("{library(splines); b <- bs(seq(0, 100, length.out = 40), knots = 100); "
                   "suppressWarnings(t(predict(b, c(-10, 25, 50))))}").reshape(3, 4)
    d = build_design(f"y ~ {call} + (1 | g)", df)
    with pytest.warns(hm.HierMIOWarning, match="beyond boundary knots may cause ill-conditioned bases"):
        X = d.fixed_matrix(new)
    keep = [1 + j for j in range(4) if f"{call}{j + 1}" in d.fixed_names]
    np.testing.assert_allclose(X[:, 1:], r[:, [k - 1 for k in keep]], rtol=1e-10, atol=1e-14)
    # above 100 R's basis is NaN (the knot coincides with the boundary knot): refused by name
    with _quiet(), pytest.raises(DataError, match=r"bs\(\): x = 250 lies above the boundary knots \[0, 100\]"):
        d.fixed_matrix(pd.DataFrame({"x": [250.0], "g": [0]}))


@needs_rscript
@pytest.mark.parametrize("call", ["bs(x, df = 6)", "bs(x, knots = c(2, 2, 5), degree = 2)", "ns(x, df = 4)",
                                  "bs(x, knots = c(1, 4), Boundary.knots = c(0, 9))"])
def test_spline_bases_equal_r_inside_and_beyond_the_boundary(call):
    x = np.round(np.random.default_rng(5).uniform(0, 9, 30), 4)
    new = np.array([-3.0, 0.0, 2.0, 4.5, 9.0, 12.0])
    r_x, r_new = "c(" + ", ".join(map(repr, x.tolist())) + ")", "c(" + ", ".join(map(repr, new.tolist())) + ")"
    r = _r_numbers(f"{{library(splines); b <- {call.replace('x', r_x, 1)}; "
                   f"suppressWarnings(c(t(b), t(predict(b, {r_new}))))}}")
    from hiermio.formula.variables import evaluate

    state: dict = {}
    train = evaluate(call, pd.DataFrame({"x": x}), state).values
    with _quiet():
        pred = evaluate(call, pd.DataFrame({"x": new}), state, learn=False).values
    k = train.shape[1]
    np.testing.assert_allclose(train, r[: 30 * k].reshape(30, k), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pred, r[30 * k:].reshape(len(new), k), rtol=1e-9, atol=1e-12)


@needs_rscript
def test_interaction_levels_are_every_combination_as_in_r():
    from hiermio.formula.variables import evaluate

    f, h = ["c", "a", "b", "a", "c"], ["y", "x", "x", "y", "y"]
    quoted = [", ".join(f'"{v}"' for v in col) for col in (f, h)]
    r_codes = _r_numbers(f"as.numeric(interaction(c({quoted[0]}), c({quoted[1]})))")
    r_levels = _r(f'cat(levels(interaction(c({quoted[0]}), c({quoted[1]}))), sep = "\\n")').split()
    v = evaluate("interaction(f, h)", pd.DataFrame({"f": f, "h": h}), {})
    assert v.levels == r_levels == ["a.x", "b.x", "c.x", "a.y", "b.y", "c.y"]
    np.testing.assert_array_equal(evaluate("as.numeric(interaction(f, h))", pd.DataFrame({"f": f, "h": h}), {}).values,
                                  r_codes)


def test_big_integer_ids_in_parquet_are_the_levels_of_the_pandas_fit(tmp_path):
    df = _id_data(BIG)
    df["g"] = df.g.astype("int64")
    df.iloc[:12].to_parquet(tmp_path / "a.parquet")
    df.iloc[12:].to_parquet(tmp_path / "b.parquet")
    with _quiet():
        whole = hm.fit("y ~ x + (1 | g)", df, budget=2)
        parts = hm.fit("y ~ x + (1 | g)", str(tmp_path), budget=2)
    assert parts.design.terms[0].level_strings == whole.design.terms[0].level_strings
    assert parts.design.terms[0].levels.tolist() == sorted(BIG)
    assert parts.certificate.primal == pytest.approx(whole.certificate.primal, rel=1e-10)


def test_a_level_unseen_in_training_inside_an_expression_is_refused_by_name():
    df = _levels_data()
    with _quiet():
        fit = hm.fit("y ~ x + as.numeric(factor(f)) + (1 | g)", df, budget=2)
    with pytest.raises(DataError, match=r"level\(s\) \['z'\] of 'factor\(f\)' that training did not have"):
        fit.predict(df.head(2).assign(f="z"), re_form="~0")


def test_cli_reads_big_ids_with_empty_cells_exactly(tmp_path, capsys):
    from hiermio.cli import main

    df = _id_data(BIG).astype({"g": object})
    df.loc[3, "g"] = None  # an empty cell: pandas alone reads the column as floats, merging the two big ids
    path = tmp_path / "ids.csv"
    df.to_csv(path, index=False)
    assert pd.read_csv(path).g.nunique() == 3
    assert main(["fit", "y ~ x + (1 | g)", str(path), "--budget", "2"]) == 0
    out = capsys.readouterr().out
    assert "groups:  g, 4" in out and "1234567890123456769" in out and "1234567890123456770" in out
