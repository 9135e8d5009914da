import numpy as np
import pandas as pd
import pytest

from hiermio import DataError, FormulaError, HierMIOWarning, build_design, fit
from reference import simulate


def test_unknown_column_is_named_with_suggestion():
    df = simulate()
    with pytest.raises(FormulaError, match=r"unknown column 'xx' \(did you mean 'x'\?\)"):
        build_design("y ~ xx + (1 | g)", df)
    with pytest.raises(FormulaError, match="unknown column 'grp'.*random term"):
        build_design("y ~ x + (1 | grp)", df)


def test_missing_values_are_dropped_and_counted_or_refused():
    df = simulate()
    df.loc[[0, 5], "x"] = np.nan
    df.loc[7, "g"] = None
    d = build_design("y ~ x + (1 | g)", df)
    assert d.n_dropped == 3 and d.n == len(df) - 3
    assert 0 not in d.rows and 7 not in d.rows
    with pytest.raises(DataError, match=r"3 row\(s\) have missing values in 'g' \(1\), 'x' \(2\)"):
        build_design("y ~ x + (1 | g)", df, na_action="raise")
    assert "3 with missing values dropped" in str(fit("y ~ x + (1 | g)", df, budget=1).summary())


def test_non_numeric_response_is_refused():
    df = simulate().assign(label=lambda d: np.where(d.y > 1, "hi", "lo"))
    with pytest.raises(DataError, match="response 'label' must be numeric"):
        build_design("label ~ x + (1 | g)", df)


def test_single_level_grouping_factor_is_refused():
    df = simulate().assign(one="A")
    with pytest.raises(DataError, match="grouping factor 'one' .* single level \\('A'\\)"):
        build_design("y ~ x + (1 | one)", df)


def test_rank_deficient_fixed_part_drops_the_column_as_lme4_does():
    df = simulate().assign(x2=lambda d: 2 * d.x)
    with pytest.warns(HierMIOWarning, match="rank deficient so dropping 1 column / coefficient: 'x2'"):
        d = build_design("y ~ x + x2 + (1 | g)", df)
    assert d.fixed_names == ("(Intercept)", "x") and d.dropped_columns == ("x2",)


def test_transform_producing_nan_is_refused():
    df = simulate()
    with pytest.raises(DataError, match="fixed part evaluates to NaN"):
        build_design("y ~ np.log(x) + (1 | g)", df)


def test_categoricals_and_interaction_grouping():
    df = simulate(crossed=True).assign(c=lambda d: np.where(d.x > 0, "a", "b"))
    d = build_design("y ~ C(c) + x + (1 | g:h)", df)
    assert d.fixed_names == ("(Intercept)", "C(c)b", "x")  # R's spelling, as lme4 names it
    labels = (df.g.astype(str) + ":" + df.h.astype(str)).unique()
    assert d.terms[0].n_levels == len(labels)


def test_factor_level_order_follows_categorical():
    df = simulate()
    df["g"] = pd.Categorical(df.g.astype(str), categories=[str(k) for k in range(7, -1, -1)])
    d = build_design("y ~ x + (1 | g)", df)
    assert list(d.terms[0].levels) == [str(k) for k in range(7, -1, -1)]


def test_unseen_category_in_new_data_is_an_error_not_the_reference_level():
    df = simulate(K=6).assign(sex=lambda d: np.where(d.x > 0, "M", "F"))
    fit_ = fit("y ~ x + sex + (1 | g)", df, 2)
    with pytest.raises(DataError, match=r"level\(s\) \['X'\] of 'sex' \(in the fixed part\) that training did not have"):
        fit_.predict(df.head(2).assign(sex="X"))


def test_empty_data_is_named():
    with pytest.raises(DataError, match="data has no rows"):
        build_design("y ~ x + (1 | g)", simulate().head(0))


# ------------------------------------------------------------ designs of many blocks (65,536 rows each)
def _many_rows(n=150_000, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.uniform(1, 2, n), "f": rng.choice(list("abc"), n),
                       "g": rng.integers(0, 300, n)})
    df["y"] = df.x + (df.f == "b") + rng.normal(size=n) + 0.1 * (df.g % 7)
    return df


def test_a_design_of_many_blocks_has_the_model_matrix_built_by_hand():
    # truth: R's model.matrix spelled out with numpy (treatment contrasts, scale() with the sample sd)
    df = _many_rows()
    d = build_design("y ~ x * f + scale(z) + (1 | g)", df)
    fb, fc = (df.f == "b").to_numpy(float), (df.f == "c").to_numpy(float)
    sz = (df.z - df.z.mean()) / df.z.std()
    by_hand = np.column_stack([np.ones(len(df)), df.x, fb, fc, sz, df.x * fb, df.x * fc])
    assert d.fixed_names == ("(Intercept)", "x", "fb", "fc", "scale(z)", "x:fb", "x:fc")
    blocks = list(d.row_blocks())
    assert len(blocks) == 3
    np.testing.assert_allclose(np.vstack([b.X for b in blocks]), by_hand, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.X, by_hand, rtol=1e-12, atol=1e-12)


def test_collinearity_across_blocks_drops_the_column_as_lme4_does():
    df = _many_rows().assign(x2=lambda d: 2 * d.x + 3)
    with pytest.warns(HierMIOWarning, match="dropping 1 column / coefficient: 'x2'"):
        d = build_design("y ~ x + x2 + (1 | g)", df)
    assert d.fixed_names == ("(Intercept)", "x")


def test_a_fit_does_not_depend_on_the_order_of_the_rows():
    # a column constant over the first block (sorted data) is not an intercept; blocks are
    # evaluated separately, so a fit on the rows shuffled must give the same answer
    df = _many_rows().sort_values("z").reset_index(drop=True)
    df["step"] = np.where(np.arange(len(df)) < 80_000, 1.0, df.z)
    kw = dict(time_limit=20, progress=False)
    a = fit("y ~ x + step + (1 | g)", df, 5, **kw)
    b = fit("y ~ x + step + (1 | g)", df.sample(frac=1.0, random_state=1), 5, **kw)
    assert a.design.fixed_names == ("(Intercept)", "x", "step")
    assert set(a.selected["(1 | g)"]) == set(b.selected["(1 | g)"])
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8)


def test_non_finite_values_are_counted_over_every_block():
    df = _many_rows()
    df.loc[[10, 100_000], "z"] = -1.0  # log of a negative number in the first and the second block
    with pytest.raises(DataError, match=r"fixed part evaluates to NaN or infinity in 2 row\(s\)"):
        build_design("y ~ np.log(z) + (1 | g)", df)


def _sorted_years(n=140_000, seed=2):
    rng = np.random.default_rng(seed)
    year = np.repeat(["y2019", "y2020", "y2021"], [60_000, 40_000, 40_000])  # the second block lacks y2019
    code = np.where(np.arange(n) < 65_536, rng.choice(["10", "20", "x"], n), rng.choice(["x", "w"], n)).astype(object)
    return pd.DataFrame({"y": rng.normal(size=n), "year": year, "code": code, "t": np.linspace(0, 800, n),
                         "g": rng.integers(0, 50, n)})


@pytest.mark.parametrize("formula, by_hand", [
    # codes of a factor made from all the rows (R: 1, 2, 3), though a block lacks a level
    ("y ~ as.numeric(factor(year)) + (1 | g)",
     lambda df: pd.Categorical(df.year).codes + 1.0),
    # a column's type is decided on all its rows (mostly text: a factor), not per block
    ("y ~ code + (1 | g)",
     lambda df: np.column_stack([(df.code == lv).to_numpy(float) for lv in sorted(df.code.unique())[1:]])),
    # a magnitude is checked over all rows: exp(-t) underflows in the last block only
    ("y ~ exp(-t) + (1 | g)", lambda df: np.exp(-df.t.to_numpy())),
])
def test_blocks_are_the_variables_evaluated_on_all_the_rows(formula, by_hand):
    df = _sorted_years()
    d = build_design(formula, df)
    expected = np.column_stack([np.ones(len(df)), by_hand(df)])
    np.testing.assert_array_equal(np.vstack([b.X for b in d.row_blocks()]), expected)
    np.testing.assert_array_equal(d.X, expected)


def test_a_level_only_in_dropped_rows_keeps_the_codes_of_all_rows():
    # model.frame evaluates on every row, then drops the incomplete ones: s's levels include "a"
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"s": ["a"] + ["b"] * 150 + ["c"] * 150, "g": rng.integers(0, 10, 301)})
    df["y"] = np.where(df.s == "c", 1.0, 0.0) + rng.normal(scale=0.1, size=301)
    df.loc[0, "y"] = np.nan
    d = build_design("y ~ I(as.numeric(factor(s)) == 2) + (1 | g)", df)  # 2 is "b"
    np.testing.assert_array_equal(d.X[:, 1], (df.s[1:] == "b").to_numpy(float))
    res = fit("y ~ I(as.numeric(factor(s)) == 2) + (1 | g)", df, 0, progress=False)
    assert res.beta[1] < -0.9  # "b" rows are 1 lower than "c" rows


def test_arrays_changed_after_the_fit_are_refused_not_used():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    df = pd.DataFrame({"x": x, "g": rng.integers(0, 30, 1000), "y": x + rng.normal(size=1000)}, copy=False)
    res = fit("y ~ x + (1 | g)", df, 3, progress=False)
    x[5] += 1.0  # the array behind the frame's column, changed in place after the fit
    with pytest.raises(DataError, match="column 'x' of the fixed part no longer has the values"):
        res.fitted()
