"""Issue #25, rows: every stage works by position on the rows the design kept, whatever the data's
index; Series arguments are aligned by index or refused; budgets above a part's levels are capped;
the loops' options are validated before work. Truths are computed apart: fits on rows selected by
position, arguments reordered by hand, dense least squares."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hiermio as hm
from hiermio.core.exceptions import DataError, HierMIOError
from hiermio.comparisons.lme4 import r_available
from hiermio.data.splits import within_cluster_folds
from reference import dense_ridge, simulate

FORMULA = "Reaction ~ Days + (1 | Subject)"


@pytest.fixture
def doubled_index(sleepstudy):
    """sleepstudy as pd.concat of two halves leaves it: every index label twice."""
    return pd.concat([sleepstudy.iloc[:90], sleepstudy.iloc[90:].set_axis(range(90))])


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hm.HierMIOWarning)
        return call()


# ------------------------------------------------------------------ 2. a non-unique index
def test_cv_on_a_repeated_index_uses_each_row_once_and_scores_folds_by_position(doubled_index, sleepstudy):
    res = _quiet(lambda: hm.cv(FORMULA, doubled_index, budgets=[2], folds=3, random_state=0))
    assert res.best_fit_.nobs == len(doubled_index) == 180  # was 360: rows selected by label
    # truth: each fold's fit is hm.fit on the fold's rows taken by position, scored on the others
    fold_of = within_cluster_folds(sleepstudy.Subject, 3, 0)
    for f in range(3):
        train, valid = sleepstudy.iloc[fold_of != f], sleepstudy.iloc[fold_of == f]
        fit = _quiet(lambda: hm.fit(FORMULA, train, 2, certify=False))
        mse = float(np.mean((valid.Reaction.to_numpy() - fit.predict(valid).to_numpy()) ** 2))
        assert res.table.loc[2, f"fold_{f}"] == pytest.approx(mse, rel=1e-9)


def test_stability_on_a_repeated_index_is_that_of_the_same_rows_numbered(doubled_index, sleepstudy):
    # truth: the same rows numbered 0..179, where labels and positions agree (the doubled rows changed
    # which levels the half-samples select: frequencies off by up to 1/6)
    st_dup = _quiet(lambda: hm.stability(FORMULA, doubled_index, budget=6, B=6, random_state=1))
    st_plain = _quiet(lambda: hm.stability(FORMULA, sleepstudy, budget=6, B=6, random_state=1))
    pd.testing.assert_frame_equal(st_dup.frequencies, st_plain.frequencies)


def test_compare_on_a_repeated_index_scores_the_rows_once(doubled_index, sleepstudy):
    # was a numpy broadcast error: MIO was fitted on the training rows selected by label (each twice)
    cmp = hm.compare(FORMULA, doubled_index, methods=["ols", "mio"], budget=3, split="within", random_state=0)
    train, test = hm.train_test_split_clusters(sleepstudy, "Subject", "within", random_state=0)
    X = np.column_stack([np.ones(len(train)), train.Days])
    beta = np.linalg.lstsq(X, train.Reaction.to_numpy(), rcond=None)[0]
    test_mse = np.mean((test.Reaction.to_numpy() - beta[0] - beta[1] * test.Days.to_numpy()) ** 2)
    assert cmp.table.loc["ols", "test_mse"] == pytest.approx(test_mse, rel=1e-10)
    mio = hm.fit(FORMULA, train, 3)  # the training rows by position
    assert cmp.fits["mio"].nobs == len(train)
    assert cmp.table.loc["mio", "test_mse"] == pytest.approx(
        np.mean((test.Reaction.to_numpy() - mio.predict(test).to_numpy()) ** 2), rel=1e-9)
    tr_dup, te_dup = hm.train_test_split_clusters(doubled_index, "Subject", "within", random_state=0)
    assert (len(tr_dup), len(te_dup)) == (len(train), len(test)) and len(tr_dup) + len(te_dup) == 180


def test_held_out_clusters_do_not_depend_on_the_order_of_the_rows(sleepstudy):
    shuffled = sleepstudy.sample(frac=1, random_state=7)
    _, test = hm.train_test_split_clusters(sleepstudy, "Subject", "cluster", test_size=0.25, random_state=3)
    _, test_shuffled = hm.train_test_split_clusters(shuffled, "Subject", "cluster", test_size=0.25, random_state=3)
    assert set(test.Subject) == set(test_shuffled.Subject) and len(set(test.Subject)) == 4


# ------------------------------------------------------------------ 8. Series aligned by index or refused
@pytest.mark.parametrize("argument", ["weights", "offset"])
def test_a_series_in_another_order_is_aligned_by_index(sleepstudy, argument):
    rng = np.random.default_rng(3)
    values = rng.uniform(0.5, 2.0, len(sleepstudy)) if argument == "weights" else rng.normal(0, 5, len(sleepstudy))
    shuffled = pd.Series(values, index=sleepstudy.index).sample(frac=1, random_state=4)
    by_index = hm.fit(FORMULA, sleepstudy, 3, **{argument: shuffled})
    by_hand = hm.fit(FORMULA, sleepstudy, 3, **{argument: values})  # the values in the data's row order
    assert by_index.certificate.primal == pytest.approx(by_hand.certificate.primal, rel=1e-10)
    np.testing.assert_allclose(by_index.beta, by_hand.beta, rtol=1e-10)
    # the loops carry the same rule: cv with the shuffled Series is cv with the values in row order
    cv_index = _quiet(lambda: hm.cv(FORMULA, sleepstudy, budgets=[1, 3], folds=3, **{argument: shuffled}))
    cv_hand = _quiet(lambda: hm.cv(FORMULA, sleepstudy, budgets=[1, 3], folds=3, **{argument: values}))
    np.testing.assert_allclose(cv_index.table.to_numpy(), cv_hand.table.to_numpy(), rtol=1e-10)


@pytest.mark.parametrize("argument", ["weights", "offset"])
def test_a_series_with_other_labels_is_refused_naming_it(sleepstudy, argument):
    other = pd.Series(np.ones(len(sleepstudy)), index=np.arange(len(sleepstudy)) + 1000)
    with pytest.raises(DataError, match=f"{argument} is a pandas Series whose index does not match the data's: "
                                        "its labels are not those"):
        hm.fit(FORMULA, sleepstudy, 3, **{argument: other})


def test_a_series_cannot_be_matched_to_a_repeated_index_unless_it_is_that_index(doubled_index):
    w = np.linspace(1, 2, 180)
    reversed_series = pd.Series(w, index=doubled_index.index)[::-1]
    with pytest.raises(DataError, match="weights is a pandas Series .* the data's index repeats labels"):
        hm.fit(FORMULA, doubled_index, 3, weights=reversed_series)
    same = hm.fit(FORMULA, doubled_index, 3, weights=pd.Series(w, index=doubled_index.index))
    assert same.certificate.primal == pytest.approx(hm.fit(FORMULA, doubled_index, 3, weights=w).certificate.primal,
                                                    rel=1e-12)


@pytest.mark.skipif(not r_available(), reason="R with lme4 and rpy2 not installed")
def test_lmer_aligns_a_weights_series_by_the_same_rule(sleepstudy):
    w = np.linspace(1, 2, len(sleepstudy))
    shuffled = pd.Series(w, index=sleepstudy.index)[::-1]
    by_index = hm.lmer(FORMULA, sleepstudy, weights=shuffled)
    by_hand = hm.lmer(FORMULA, sleepstudy, weights=w)
    np.testing.assert_allclose(by_index.fixef().to_numpy(), by_hand.fixef().to_numpy(), rtol=1e-8)


def test_the_estimators_y_series_is_aligned_by_index(sleepstudy):
    X = sleepstudy.drop(columns="Reaction").set_axis([f"r{i}" for i in range(180)])
    y = pd.Series(sleepstudy.Reaction.to_numpy(), index=X.index).sample(frac=1, random_state=0)
    est = hm.HierMIO("Reaction ~ Days + (1 | Subject)", budget=3).fit(X, y)
    truth = hm.fit(FORMULA, sleepstudy, 3)
    np.testing.assert_allclose(est.fit_.beta, truth.beta, rtol=1e-10)
    with pytest.raises(DataError, match="y is a pandas Series whose index does not match"):
        hm.HierMIO("Reaction ~ Days + (1 | Subject)", budget=3).fit(X, y.reset_index(drop=True))


# ------------------------------------------------------------------ 12. budgets above the levels are capped
def test_a_budget_above_the_levels_is_every_level_free_with_a_warning(sleepstudy):
    with pytest.warns(hm.HierMIOWarning, match=r"budget 30 for random term \(1 \| Subject\) is above its 18 "
                                               r"levels: capped at 18"):
        fit = hm.fit(FORMULA, sleepstudy, 30, refit=False)
    assert any("capped at 18" in w for w in fit.warnings)
    # truth: the ridge fit with every level's column, by dense least squares
    objective, beta, gamma = dense_ridge(fit.design, fit.mu, np.arange(18))
    assert fit.certificate.primal == pytest.approx(objective, rel=1e-9)
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-8)
    with pytest.raises(hm.BudgetError, match="must be at least 0"):
        hm.fit(FORMULA, sleepstudy, -1)


def test_grid_search_over_budgets_scores_every_fold(sleepstudy):
    from sklearn.model_selection import GridSearchCV, GroupKFold

    est = hm.HierMIO(FORMULA, budget=0)
    with pytest.warns(hm.HierMIOWarning, match="above its 12 levels: capped at 12"):
        gs = GridSearchCV(est, {"budget": [2, 18]}, cv=GroupKFold(3), error_score="raise")
        gs.fit(sleepstudy, sleepstudy.Reaction, groups=sleepstudy.Subject)  # was NaN: "must lie in 0..12"
    assert np.isfinite(gs.cv_results_["mean_test_score"]).all()


def test_compare_with_held_out_clusters_caps_the_budget_to_the_training_levels(sleepstudy):
    with pytest.warns(hm.HierMIOWarning, match="above its 14 levels: capped at 14"):
        cmp = hm.compare(FORMULA, sleepstudy, methods=["mio"], budget=18, split="cluster", random_state=0)
    assert cmp.table.loc["mio", "n_effects"] == 14


def test_stability_with_a_budget_above_a_half_samples_levels(sleepstudy):
    # a cluster with one row has it in one half only: that half has 17 levels, and budget 18 is capped there
    one_row = sleepstudy[(sleepstudy.Subject != 308) | (sleepstudy.Days == 0)]
    res = _quiet(lambda: hm.stability(FORMULA, one_row, budget=18, B=2))
    assert res.frequencies.loc[308].iloc[0] == pytest.approx(0.5)  # selected in the one half that has it
    assert (res.frequencies.drop(index=308) == 1.0).all().all()
    # the same rows read in partitions: each half-sample is summed in one pass, and capped the same way
    chunks = [one_row.iloc[:80], one_row.iloc[80:]]
    parts = _quiet(lambda: hm.stability(FORMULA, chunks, budget=18, B=2))
    assert parts.frequencies.loc[308].iloc[0] == pytest.approx(0.5)
    assert (parts.frequencies.drop(index=308) == 1.0).all().all()


# ------------------------------------------------------------------ errors from inside dependencies
def test_bootstrap_of_a_tail_budget_fit(sleepstudy):
    tail = hm.fit(FORMULA, sleepstudy, {"(1 | Subject)": (18, 18)})  # was TypeError: int() of a tuple
    plain = hm.fit(FORMULA, sleepstudy, 18)
    # both signs free for every level is the unconstrained fit: the same resamples give the same intervals
    b_tail = hm.bootstrap(tail, B=6, random_state=2)
    b_plain = hm.bootstrap(plain, B=6, random_state=2)
    np.testing.assert_allclose(b_tail.to_numpy(), b_plain.to_numpy(), rtol=1e-6)
    from hiermio.fitting.bootstrap import _grouped_by

    assert _grouped_by(hm.fit(FORMULA, sleepstudy, {"(1 | Subject)": (1, 2)}), "copy")[1] == {"(1 | copy)": (1, 2)}


def test_bootstrap_when_the_grouping_column_is_also_a_covariate():
    df = simulate(K=8, n_per=6, seed=3)
    df["gnum"] = df.g.astype(int)  # a numeric id, 0..7: as text it sorts as the numbers do
    df["gtext"] = df.gnum.astype(str)
    both = hm.fit("y ~ x + gnum + (1 | gnum)", df, 2)
    apart = hm.fit("y ~ x + gnum + (1 | gtext)", df, 2)
    np.testing.assert_allclose(both.beta, apart.beta, rtol=1e-9)
    # was "Length of values (19) does not match": the covariate must keep its values in every resample
    b_both = hm.bootstrap(both, B=6, random_state=0)
    b_apart = hm.bootstrap(apart, B=6, random_state=0)
    np.testing.assert_allclose(b_both.to_numpy(), b_apart.to_numpy(), rtol=1e-6)


def test_bootstrap_refuses_a_fixed_factor_that_is_the_grouping_factor():
    # y ~ g + (1 | g): a resample without some clusters codes g with other columns (another reference
    # level), so its coefficients would be compared under the same names with other meanings
    df = simulate(K=6, n_per=5, seed=1).assign(gs=lambda d: "L" + d.g.astype(str))
    fit = _quiet(lambda: hm.fit("y ~ x + gs + (1 | gs)", df, 2))
    with pytest.raises(HierMIOError, match=r"cannot resample this fit: \d+ of 10 resamples .* other fixed-effect "
                                           r"columns \(\['gsL1', 'gsL2'"):
        hm.bootstrap(fit, B=10)


def test_bootstrap_leaves_out_resamples_where_a_cluster_level_factor_has_one_level():
    df = simulate(K=6, n_per=5, seed=1)
    df["kind"] = np.where(df.g < 3, "a", "b")
    fit = hm.fit("y ~ x + kind + (1 | g)", df, 2)
    with pytest.warns(hm.HierMIOWarning, match=r"\d+ of 20 resamples .* factor 'kind' has a single level .* the "
                                               r"intervals come from the other \d+"):
        out = hm.bootstrap(fit, B=20)
    np.testing.assert_array_equal(out.estimate.to_numpy(), fit.beta)
    assert np.isfinite(out.to_numpy()).all()


def test_stability_takes_per_row_weights_as_an_array(sleepstudy):
    w = np.random.default_rng(0).uniform(0.5, 2, len(sleepstudy))
    by_array = _quiet(lambda: hm.stability(FORMULA, sleepstudy, budget=3, B=4, weights=w))  # was "180 values but 90"
    by_column = _quiet(lambda: hm.stability(FORMULA, sleepstudy.assign(w=w), budget=3, B=4, weights="w"))
    pd.testing.assert_frame_equal(by_array.frequencies, by_column.frequencies)


def test_stability_refuses_weights_of_the_wrong_length_before_any_fit(sleepstudy):
    with pytest.raises(DataError, match="weights has 10 values but the data has 180 rows"):
        hm.stability(FORMULA, sleepstudy, budget=3, B=4, weights=np.ones(10))


def test_one_cluster_feature_given_as_a_string_is_one_column(sleepstudy):
    df = sleepstudy.assign(weight=sleepstudy.Subject % 7 + 0.5)
    fit = hm.fit(FORMULA, df, 4)
    new = df.assign(Subject=df.Subject + 1000)
    one = fit.predict(new, new_levels="features", cluster_features="weight")  # was split into w, e, i, g, h, t
    listed = fit.predict(new, new_levels="features", cluster_features=["weight"])
    pd.testing.assert_series_equal(one, listed)
    res = _quiet(lambda: hm.cv(FORMULA, df, budgets=[0, 2], folds=3, scheme="cluster", new_levels="features",
                               cluster_features="weight"))
    assert np.isfinite(res.table.mean_mse).all()
    with pytest.raises(HierMIOError, match="cluster_features must be a column name or a list of column names, got 3"):
        hm.cv(FORMULA, df, budgets=[0, 2], new_levels="features", cluster_features=3)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "0"])
@pytest.mark.parametrize("call", [
    lambda d, rs: hm.cv(FORMULA, d, budgets=[0, 1], random_state=rs),
    lambda d, rs: hm.stability(FORMULA, d, budget=1, B=2, random_state=rs),
    lambda d, rs: hm.compare(FORMULA, d, methods=["ols"], split="within", random_state=rs),
    lambda d, rs: hm.train_test_split_clusters(d, "Subject", random_state=rs),
    lambda d, rs: hm.bootstrap(hm.fit(FORMULA, d, 1), B=2, random_state=rs),
], ids=["cv", "stability", "compare", "train_test_split_clusters", "bootstrap"])
def test_random_state_is_validated_naming_it(sleepstudy, call, bad):
    with pytest.raises(HierMIOError, match=r"random_state must be (in 0\.\.4294967295|a whole number), got"):
        call(sleepstudy, bad)


def test_random_state_none_draws_one_seed_for_the_whole_call(sleepstudy):
    res = _quiet(lambda: hm.cv(FORMULA, sleepstudy, budgets=[0, 1], folds=3, random_state=None))
    assert np.isfinite(res.table.mean_mse).all()


# ------------------------------------------------------------------ property: rows and index do not matter
_DATA = simulate(K=6, n_per=5, seed=11)
_F = "y ~ x + (1 | g)"


def _with_index(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    n = len(df)
    index = {"duplicated": np.arange(n) // 2, "strings": [f"row{i}" for i in range(n)],
             "reversed": np.arange(n)[::-1], "range": pd.RangeIndex(100, 100 + 3 * n, 3)}[kind]
    return df.set_axis(index)


def _summary(fit):
    eff = fit.ranef()["g"].iloc[:, 0]
    return fit.certificate.primal, fit.beta, eff.sort_index()


_BASE = _summary(hm.fit(_F, _DATA, 2))
_BASE_CV = _quiet(lambda: hm.cv(_F, _DATA, budgets=[0, 2], folds=3, scheme="cluster")).table
_BASE_CV_WITHIN = _quiet(lambda: hm.cv(_F, _DATA, budgets=[0, 2], folds=3, random_state=5)).table
_BASE_STAB = _quiet(lambda: hm.stability(_F, _DATA, budget=2, B=2, random_state=5)).frequencies


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(len(_DATA))), kind=st.sampled_from(["duplicated", "strings", "reversed", "range"]))
def test_any_row_order_and_any_index_give_the_same_fit_and_cluster_folds(order, kind):
    df = _with_index(_DATA.iloc[list(order)], kind)
    objective, beta, eff = _summary(hm.fit(_F, df, 2))
    assert objective == pytest.approx(_BASE[0], rel=1e-8)
    np.testing.assert_allclose(beta, _BASE[1], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(eff.to_numpy(), _BASE[2].to_numpy(), rtol=1e-8, atol=1e-8)
    # whole clusters held out: the folds follow the cluster labels, not the rows' order
    res = _quiet(lambda: hm.cv(_F, df, budgets=[0, 2], folds=3, scheme="cluster"))
    np.testing.assert_allclose(res.table.to_numpy(), _BASE_CV.to_numpy(), rtol=1e-8)
    assert res.best_fit_.nobs == len(df)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["duplicated", "strings", "reversed", "range"]))
def test_the_index_alone_changes_no_within_cluster_fold_or_half_sample(kind):
    # within-cluster folds and half-samples deal each cluster's rows by position: the same rows in
    # the same order give the same folds and halves whatever their labels
    df = _with_index(_DATA, kind)
    table = _quiet(lambda: hm.cv(_F, df, budgets=[0, 2], folds=3, random_state=5)).table
    np.testing.assert_allclose(table.to_numpy(), _BASE_CV_WITHIN.to_numpy(), rtol=1e-10)
    freq = _quiet(lambda: hm.stability(_F, df, budget=2, B=2, random_state=5)).frequencies
    pd.testing.assert_frame_equal(freq, _BASE_STAB)
