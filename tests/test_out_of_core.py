"""Data read in partitions (chunks, parquet, dask) give the in-memory fit: the truth is the same
formula fitted on the whole pandas frame (itself checked against lme4 and brute force elsewhere)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from hiermio.formula.design import build_design
from hiermio.core.exceptions import DataError, FormulaError
from hiermio.formula.streaming import learn_design


def _data(n: int = 900, K: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, K, n)
    h = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    shop = rng.choice(["north", "south", "east"], n)
    effect = np.where(np.arange(K) < 5, 2.0, 0.0)[g] + 0.8 * (g % 7 == 0) * z
    y = 1 + 0.5 * x - 0.3 * (shop == "south") + effect + 0.4 * (h == 3) + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "z": z, "shop": shop, "g": [f"c{k:02d}" for k in g], "h": h,
                       "ordinal": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), ["lo", "mid", "hi"], ordered=True),
                       "w": rng.uniform(0.5, 2, n)})
    df.loc[rng.choice(n, 25, replace=False), "x"] = np.nan
    df.loc[rng.choice(n, 10, replace=False), "shop"] = None
    return df


def _chunks(df: pd.DataFrame, sizes: list[int]) -> list[pd.DataFrame]:
    edges = np.cumsum([0, *sizes])
    assert edges[-1] == len(df)
    return [df.iloc[a:b] for a, b in zip(edges[:-1], edges[1:])]


def _same_fit(a: hm.MIOFit, b: hm.MIOFit) -> None:
    assert a.selected == b.selected
    assert b.certificate.primal == pytest.approx(a.certificate.primal, rel=1e-10)
    # the search runs on numbers equal to rounding, so it may stop one node apart: "optimal" (bound
    # closed) against "gap_limit" (bound within the requested gap) is the same certificate
    certified = {"optimal", "gap_limit"}
    assert (a.certificate.status in certified) == (b.certificate.status in certified)
    if a.certificate.status not in certified:
        assert b.certificate.status == a.certificate.status
    assert b.certificate.gap <= max(a.certificate.gap, a.control.gap) * (1 + 1e-6)
    assert a.design.fixed_names == b.design.fixed_names
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-7, atol=1e-9 * np.abs(a.beta).max())
    np.testing.assert_allclose(b.gamma, a.gamma, rtol=1e-7, atol=1e-9 * max(np.abs(a.gamma).max(), 1))
    assert b.nobs == a.nobs and b.design.n_dropped == a.design.n_dropped


FORMULAS = [
    "y ~ x + shop + (1 | g)",
    "y ~ scale(x) + poly(z, 2) + ordinal + (1 | g)",
    "y ~ x + shop + (1 + z | g)",
    "y ~ x + (1 | g) + (1 | h)",
    "y ~ x * shop + center(z) + (1 | g)",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_chunks_give_the_in_memory_fit(formula):
    df = _data()
    # uneven chunks split clusters across boundaries; the last chunk is one row
    chunks = _chunks(df, [250, 1, 400, 248, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = hm.fit(formula, df, budget=4)
        parts = hm.fit(formula, chunks, budget=4)
    _same_fit(whole, parts)
    # the standard errors are a pass over the partitions too
    np.testing.assert_allclose(parts.vcov().to_numpy(), whole.vcov().to_numpy(), rtol=1e-6, atol=1e-12)
    assert str(parts.summary()).count("Estimate") == 1


def test_levels_and_transforms_are_learned_as_in_memory():
    df = _data()
    # a level of g and a level of shop that occur in one partition only; a factor absent from a partition
    df.loc[df.index[:3], "g"] = "only_here"
    df.loc[df.index[-2:], "shop"] = "west"
    formula = "y ~ scale(x) + poly(z, 3) + shop + ordinal + factor(h) + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = build_design(formula, df)
        parts = learn_design(formula, _chunks(df, [300, 300, 300]))
    assert parts.fixed_names == mem.fixed_names
    assert list(parts.terms[0].level_strings) == list(mem.terms[0].level_strings)
    assert parts._levels == mem._levels
    assert parts.n == mem.n and parts.n_dropped == mem.n_dropped
    for key, value in mem._state.items():
        if isinstance(value[0], list) and all(isinstance(s, str) for s in value[0]):  # factor()'s levels
            assert parts._state[key] == value
            continue
        np.testing.assert_allclose(np.concatenate([np.ravel(v) for v in parts._state[key]]),
                                   np.concatenate([np.ravel(v) for v in value]), rtol=1e-12)


def test_interaction_and_numeric_grouping_factors_order_as_in_memory():
    df = _data()
    formula = "y ~ x + (1 | shop:g) + (1 | h)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = build_design(formula, df)
        parts = learn_design(formula, _chunks(df, [450, 450]))
    for a, b in zip(mem.terms, parts.terms):
        assert list(a.level_strings) == list(b.level_strings)
        assert list(a.levels) == list(b.levels)


def test_weights_and_offsets_by_column():
    df = _data().assign(off=lambda d: 0.1 * d.z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = hm.fit("y ~ x + offset(off) + (1 | g)", df, budget=3, weights="w")
        parts = hm.fit("y ~ x + offset(off) + (1 | g)", _chunks(df, [100, 800]), budget=3, weights="w")
    _same_fit(whole, parts)


def test_offset_of_1e8_gives_the_same_answer_in_chunks():
    df = _data()
    df["x"] = df["x"].fillna(0.0) + 1e8
    df = df.sort_values("x")  # the first chunk holds the smallest values: its means are the worst shift
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = hm.fit("y ~ x + (1 | g)", df, budget=4)
        parts = hm.fit("y ~ x + (1 | g)", _chunks(df, [90] * 10), budget=4)
    _same_fit(whole, parts)
    assert parts.fixef()["x"] == pytest.approx(0.5, abs=0.15)


def test_parquet_directory_and_predict_in_partitions(tmp_path):
    df = _data().reset_index(drop=True)
    for i, part in enumerate(_chunks(df, [300, 300, 300])):
        part.to_parquet(tmp_path / f"part-{i}.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = hm.fit("y ~ x + shop + (1 + z | g)", df, budget=4)
        parts = hm.fit("y ~ x + shop + (1 + z | g)", str(tmp_path), budget=4)
    _same_fit(whole, parts)
    fitted = pd.concat(list(parts.fitted()))
    np.testing.assert_allclose(fitted.to_numpy(), whole.fitted().to_numpy(), rtol=1e-9)
    resid = pd.concat(list(parts.residuals()))
    np.testing.assert_allclose(resid.to_numpy(), whole.residuals().to_numpy(), atol=1e-8)
    new = df.dropna().head(50)
    pred = pd.concat(list(whole.predict([new.iloc[:20], new.iloc[20:]])))
    np.testing.assert_allclose(pred.to_numpy(), whole.predict(new).to_numpy())


def test_dask_frame_on_a_local_cluster():
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    df = _data().dropna()
    ddf = dd.from_pandas(df, npartitions=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = hm.fit("y ~ scale(x) + shop + (1 | g) + (1 | h)", df, budget=3)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster):
            parts = hm.fit("y ~ scale(x) + shop + (1 | g) + (1 | h)", ddf, budget=3)
            pred = parts.predict(ddf, allow_new_levels=True).compute()
    _same_fit(whole, parts)
    np.testing.assert_allclose(pred.sort_index().to_numpy(), whole.predict(df, allow_new_levels=True).to_numpy(),
                               rtol=1e-9)


def test_bad_partitioned_input_is_refused_by_name():
    df = _data()
    with pytest.raises(DataError, match="one-shot iterator"):
        hm.fit("y ~ x + (1 | g)", iter(_chunks(df, [450, 450])), budget=2)
    with pytest.raises(DataError, match="weights= for data read in partitions"):
        hm.fit("y ~ x + (1 | g)", _chunks(df, [450, 450]), budget=2, weights=np.ones(900))
    with pytest.raises(DataError, match="weights='ww' is not a column of the data \\(did you mean 'w'\\?\\)"):
        hm.fit("y ~ x + (1 | g)", _chunks(df, [450, 450]), budget=2, weights="ww")
    with pytest.raises(FormulaError, match="unknown column 'xx'"):
        hm.fit("y ~ xx + (1 | g)", _chunks(df, [450, 450]), budget=2)
    with pytest.raises(FormulaError, match="knots"):
        hm.fit("y ~ ns(z, df = 4) + (1 | g)", _chunks(df, [450, 450]), budget=2)
    with pytest.raises(DataError, match="no parquet file"):
        hm.fit("y ~ x + (1 | g)", "/nonexistent/discharges/", budget=2)
    # a function that returns a fresh iterator is read as often as needed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hm.fit("y ~ x + (1 | g)", lambda: iter(_chunks(df, [450, 450])), budget=2)
    assert fit.nobs == df.x.notna().sum()


def test_rules_that_need_training_rows_say_so():
    df = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hm.fit("y ~ x + (1 | g)", _chunks(df, [450, 450]), budget=2)
    new = df.dropna().head(3).assign(g="new")
    with pytest.raises(DataError, match="training rows in memory"):
        fit.predict(new, new_levels="soft")
    assert np.isfinite(fit.predict(new, allow_new_levels=True)).all()
    with pytest.raises(DataError, match="cluster bootstrap .* needs the training rows in memory"):
        hm.bootstrap(fit, B=4)
    with pytest.raises(DataError, match="cluster bootstrap"):
        fit.confint(kind="bootstrap")


def test_cli_fits_a_parquet_directory(tmp_path, capsys):
    from hiermio.cli import main

    df = _data().reset_index(drop=True)
    for i, part in enumerate(_chunks(df, [450, 450])):
        part.to_parquet(tmp_path / f"part-{i}.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", "y ~ x + shop + (1 | g)", str(tmp_path), "--budget", "3"]) == 0
        whole = hm.fit("y ~ x + shop + (1 | g)", df, budget=3)
    out = capsys.readouterr().out
    assert "read in partitions from parquet data" in out
    assert f"objective {whole.certificate.primal:.8g};" in out


def _fold_labels(formula, chunks, folds, random_state, split=0, **kw):
    """Each row's part, as the partitioned cv / stability deal them (per partition, see hiermio.workflow.subsets)."""
    from hiermio.workflow.subsets import partition_folds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = learn_design(formula, chunks, **kw)
        return np.concatenate([partition_folds(d.block_of(c), folds, random_state, split) for c in chunks])


@pytest.mark.parametrize("formula, kw", [
    ("y ~ scale(x) + shop + (1 | g)", {}),
    ("y ~ x + shop + (1 + z | g)", {"weights": "w"}),
    ("y ~ poly(x, 2) + (1 | g) + (1 | h)", {}),
])
def test_cv_in_partitions_equals_cv_on_the_same_folds_in_memory(formula, kw):
    from sklearn.model_selection import PredefinedSplit

    df = _data()
    chunks = _chunks(df, [250, 1, 400, 248, 1])
    fold = _fold_labels(formula, chunks, 4, 7, weights=kw.get("weights"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = build_design(formula, df, weights=kw.get("weights")).rows
        parts = hm.cv(formula, chunks, budgets=[0, 2, 5], folds=4, random_state=7, progress=False, **kw)
        # the truth: the same folds, each fold's path fitted on its rows and its validation rows predicted
        whole = hm.cv(formula, df.loc[rows], budgets=[0, 2, 5], scheme=PredefinedSplit(fold), progress=False, **kw)
        reordered = hm.cv(formula, chunks[::-1], budgets=[0, 2, 5], folds=4, random_state=7, progress=False, **kw)
    np.testing.assert_allclose(parts.table.to_numpy(), whole.table.to_numpy(), rtol=1e-8)
    # the folds follow the partitions' content, not their order
    np.testing.assert_allclose(reordered.table.to_numpy(), whole.table.to_numpy(), rtol=1e-8)
    assert parts.best_budget_ == whole.best_budget_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same_fit(hm.fit(formula, df, parts.best_budget_, **kw), parts.best_fit_)
    assert parts.best_fit_.design.source is not None  # the final fit reads the partitions for its accessors


def test_cv_in_partitions_tunes_ridges_and_refuses_what_needs_rows():
    df = _data()
    chunks = _chunks(df, [450, 450])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = hm.cv("y ~ x + (1 | g)", chunks, budgets=[1, 4], ridges=[0.3, 1.0], folds=3, progress=False)
    assert res.table.index.names == ["ridge", "budget"] and res.best_ridge_ in (0.3, 1.0)
    for bad in ({"scheme": "cluster"}, {"new_levels": "soft"}):
        with pytest.raises(hm.HierMIOError, match="scheme='within'"):
            hm.cv("y ~ x + (1 | g)", chunks, budgets=[1], **bad)
    # a factor level whose only row falls in a validation fold cannot be predicted, in memory or not
    rare = df.dropna().copy()
    rare.loc[rare.index[0], "shop"] = "west"
    with pytest.raises(DataError, match="'shopwest' is not estimable"):
        hm.cv("y ~ x + shop + (1 | g)", _chunks(rare, [400, len(rare) - 400]), budgets=[1], folds=3, progress=False)
    with pytest.raises(DataError, match="west"):
        hm.cv("y ~ x + shop + (1 | g)", rare, budgets=[1], folds=3, progress=False)


def test_stability_in_partitions_equals_fits_on_the_halves():
    df = _data()
    formula = "y ~ x + shop + (1 | g)"
    chunks = _chunks(df, [300, 2, 598])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = hm.stability(formula, chunks, budget=4, B=6, random_state=2, progress=False)
        counts = pd.Series(0.0, index=st.frequencies.index)
        rows = build_design(formula, df).rows
        for i in range(3):  # the truth: each half fitted on its rows in memory
            half = _fold_labels(formula, chunks, 2, 2, split=i)
            for h in range(2):
                counts[hm.fit(formula, df.loc[rows][half == h], 4, certify=False).selected["(1 | g)"]] += 1
    pd.testing.assert_series_equal(st.frequencies["(1 | g)"], counts / 6, check_names=False)
    assert st.frequencies["(1 | g)"].nlargest(4).min() >= 0.5  # the five shifted clusters lead
