"""Issue #25, the lead's cases: options read strictly, saturated fits, the selected levels' signs,
and tail budgets beside clusterMIO's. Each test fails on the code before the fix."""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hiermio as hm
from hiermio.core.exceptions import HierMIOError, HierMIOWarning
from reference import dense_least_squares, dense_ridge


# ---------------------------------------------------------------------------------- options (7)
@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, "yes"])
def test_predict_allow_new_levels_must_be_a_boolean(sleepstudy, value):
    fit = hm.fit("Reaction ~ Days + (1 | Subject)", sleepstudy, 3)
    new = sleepstudy.head(2).assign(Subject=999)
    # "no" was truthy and predicted the new subject at population level without a word
    with pytest.raises(HierMIOError, match=f"allow_new_levels must be True or False, got {value!r}"):
        fit.predict(new, allow_new_levels=value)
    with pytest.raises(HierMIOError, match="allow_new_levels must be True or False"):
        fit.predict(allow_new_levels=value)  # checked even when the training rows are predicted


def test_vcov_kind_and_selection_aware_are_checked(sleepstudy):
    fit = hm.fit("Reaction ~ Days + (1 | Subject)", sleepstudy, 3)
    with pytest.raises(HierMIOError, match=r"kind must be one of \['robust', 'support', 'conditional'\], got 'Robust'"):
        fit.vcov("Robust")
    with pytest.raises(HierMIOError, match="selection_aware must be True or False, got 'no'"):
        fit.robust(selection_aware="no")


@pytest.mark.parametrize("call, message", [
    (lambda d: hm.cv("Reaction ~ Days + (1 | Subject)", d, budgets=[0, 2], folds=2, progress="no"),
     "progress must be True or False, got 'no'"),
    (lambda d: hm.stability("Reaction ~ Days + (1 | Subject)", d, 2, B=2, n_jobs=0),
     "n_jobs must be a whole number other than 0"),
    (lambda d: hm.stability("Reaction ~ Days + (1 | Subject)", d, 2, B=2, n_jobs="2"),
     "n_jobs must be a whole number, got '2'"),
    (lambda d: hm.path("Reaction ~ Days + (1 | Subject)", d, [0, 1], progress=1),
     "progress must be True or False, got 1"),
    (lambda d: hm.compare("Reaction ~ Days + (1 | Subject)", d, budget=2, REML="no", methods=["ols"]),
     "REML must be True or False, got 'no'"),
    (lambda d: hm.train_test_split_clusters(d, "Subject", "cluster", test_size="0.2"),
     "test_size must be a finite number strictly between 0 and 1, got '0.2'"),
    (lambda d: hm.mb_bound(5, 100, "0.8"), "threshold must be a finite number in \\(0.5, 1\\]"),
])
def test_loop_options_are_type_checked_by_name(sleepstudy, call, message):
    with pytest.raises(HierMIOError, match=message):
        call(sleepstudy)


def test_interval_level_is_type_checked(sleepstudy):
    fit = hm.fit("Reaction ~ Days + (1 | Subject)", sleepstudy, 3)
    for bad in ("0.9", np.nan, True, 95):
        with pytest.raises(HierMIOError, match="level must be a finite number strictly between 0 and 1"):
            fit.confint(bad)
        with pytest.raises(HierMIOError, match="level must be a finite number strictly between 0 and 1"):
            hm.bootstrap(fit, B=4, level=bad)


# ---------------------------------------------------------------------------------- saturated fits (9)
def _saturated_data():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 2)
    x = rng.normal(size=12)
    return pd.DataFrame({"y": x + rng.normal(size=12) + g, "x": x, "g": g})


def test_saturated_fit_gives_nan_standard_errors_with_a_warning():
    df = _saturated_data()
    with pytest.warns(HierMIOWarning, match="the fit is saturated: 12 rows, 2 fixed effects and 12 nonzero cluster "
                                            "effects leave -2 residual degrees of freedom"):
        fit = hm.fit("y ~ x + (1 + x | g)", df, 6, selection="cluster")
    assert fit.df_residual == 12 - 2 - 12 and fit.saturated
    # the fit itself interpolates the rows: numpy's least squares on [X : Z] leaves no residual
    from hiermio.formula.design import random_design_matrix
    Z = random_design_matrix(fit.design).toarray()
    A = np.hstack([fit.design.X, Z])
    assert np.linalg.norm(A @ np.linalg.lstsq(A, df.y, rcond=None)[0] - df.y) < 1e-8
    # lm's answer with no residual df: NaN, not a standard error of 1e-6 and an interval of zero width
    assert np.isnan(fit.sigma)
    for kind in ("robust", "support", "conditional"):
        assert np.isnan(fit.vcov(kind).to_numpy()).all()
        assert np.isnan(fit.confint(kind=kind).to_numpy()).all()
    table = fit.summary().coefficients()
    assert table["Std. Error"].isna().all() and table["Pr(>|t|)"].isna().all()
    assert "the fit is saturated" in str(fit.summary())


def test_one_residual_df_keeps_its_standard_errors():
    df = _saturated_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", HierMIOWarning)
        fit = hm.fit("y ~ x + (1 | g)", df, 5)
    cols = np.flatnonzero(fit.gamma)
    rss, _, _ = dense_least_squares(fit.design, cols)
    assert fit.df_residual == 12 - 2 - 5
    np.testing.assert_allclose(fit.sigma, np.sqrt(rss / 5), rtol=1e-6)
    assert np.isfinite(fit.vcov("conditional").to_numpy()).all()


# ---------------------------------------------------------------------------------- selected levels' signs (13)
def test_summary_lists_the_sign_of_every_selected_coefficient():
    rng = np.random.default_rng(3)
    g = np.repeat(list("abcdefgh"), 15)
    x = np.tile(np.linspace(-1, 1, 15), 8)
    shift = {"a": (3.0, -2.0), "b": (0.0, 2.5)}  # a: up, with a falling slope; b: a slope only
    y = 1 + x + np.array([shift.get(k, (0, 0))[0] + shift.get(k, (0, 0))[1] * xi for k, xi in zip(g, x)])
    df = pd.DataFrame({"y": y + 0.05 * rng.normal(size=len(y)), "x": x, "g": g})
    fit = hm.fit("y ~ x + (1 + x | g)", df, 3)  # three columns of the term: a's two and b's slope
    eff = fit.ranef()["g"]
    line = next(ln for ln in str(fit.summary()).splitlines() if ln.startswith("Selected levels of g"))
    assert line.startswith("Selected levels of g (signs of (Intercept), x; rows): ")
    assert eff.loc["a", "x"] < 0 < eff.loc["a", "(Intercept)"]
    for level in ("a", "b"):
        signs = " ".join("+" if v > 0 else "-" if v < 0 else "0" for v in eff.loc[level])
        assert f"{level} ({signs}, 15)" in line
    assert fit.ranking()["g"].loc["a", "sign"] == "+ -"


# ---------------------------------------------------------------------------------- tail budgets (11)
def test_tail_budget_is_below_then_above_and_maps_to_clustermio_reversed(sleepstudy):
    """clusterMIO's lambda = c(worst, best) caps the positive signs first, of an unconstrained fit of
    the support. Its rule, brute-forced with an independent dense solver, chooses what hiermio's
    (below, above) chooses with the pair reversed."""
    formula = "Reaction ~ Days + (1 | Subject)"
    design = hm.build_design(formula, sleepstudy)
    mu = hm.default_mu(design, 1.0)
    K = design.terms[0].n_levels

    def clustermio_rule(worst: int, best: int) -> list:
        top = (np.inf, ())
        for size in range(worst + best + 1):
            for cols in itertools.combinations(range(K), size):
                value, _, gamma = dense_ridge(design, mu, list(cols))
                if (gamma > 0).sum() <= worst and (gamma < 0).sum() <= best and value < top[0]:
                    top = (value, cols)
        return sorted(design.terms[0].levels[i] for i in top[1])

    for below, above in ((1, 2), (2, 1)):
        fit = hm.fit(formula, sleepstudy, {"(1 | Subject)": (below, above)})
        chosen = fit.selected["(1 | Subject)"]
        effects = fit.ranef()["Subject"]["(Intercept)"]
        assert (effects < 0).sum() <= below and (effects > 0).sum() <= above
        assert sorted(chosen) == clustermio_rule(worst=above, best=below)
    assert clustermio_rule(2, 1) != clustermio_rule(1, 2)  # the order matters on this data


# ---------------------------------------------------------------------------------- any partitioning
_PARTS_DATA = (lambda rng: pd.DataFrame({
    "x": rng.normal(size=60), "f": rng.choice(list("abcd"), 60), "g": np.repeat([f"s{i}" for i in range(10)], 6),
    "w": rng.uniform(0.5, 2, 60)}).assign(y=lambda d: d.x + (d.f == "c") + np.repeat(rng.normal(size=10) * 2, 6)
                                          + rng.normal(size=60)))(np.random.default_rng(11))
_PARTS_FORMULA = "y ~ scale(x) + as.numeric(factor(f)) + relevel(factor(f), ref = 'c') + (1 | g)"


def _parts_fit(data):
    return hm.fit(_PARTS_FORMULA, data, 3, weights="w")


_PARTS_BASE = _parts_fit(_PARTS_DATA)


@pytest.mark.filterwarnings("ignore:fixed-effect model matrix is rank deficient")  # as.numeric(f) is in the dummies' span
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(60)), cuts=st.sets(st.integers(1, 59), max_size=6))
def test_any_row_order_and_any_partitioning_give_the_in_memory_fit(order, cuts):
    """Chunks cut anywhere (a chunk may lack level "c", the reference asked for, or a whole cluster),
    of rows in any order, give the pandas fit: the levels, scale and weights come from all the data."""
    data = _PARTS_DATA.iloc[list(order)].reset_index(drop=True)
    bounds = [0, *sorted(cuts), 60]
    chunks = [data.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    fit = _parts_fit(chunks)
    assert fit.certificate.primal == pytest.approx(_PARTS_BASE.certificate.primal, rel=1e-9)
    np.testing.assert_allclose(fit.beta, _PARTS_BASE.beta, rtol=1e-7, atol=1e-9)
    assert fit.selected == _PARTS_BASE.selected


def test_a_formula_summing_1200_covariates_is_read_and_fitted():
    """A long sum of terms is read in loops (it was a RecursionError from about 1,000 terms and, with the
    nesting guard, refused above 400); inside a call a sum that deep is still refused by name."""
    rng = np.random.default_rng(2)
    p, n = 1200, 1500
    X = rng.normal(size=(n, p))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(p)]).assign(g=np.repeat(np.arange(10), n // 10))
    df["y"] = X[:, 0] + rng.normal(size=n)
    fit = hm.fit("y ~ " + " + ".join(f"x{i}" for i in range(p)) + " + (1 | g)", df, 0)
    ols = np.linalg.lstsq(np.column_stack([np.ones(n), X]), df.y, rcond=None)[0]
    np.testing.assert_allclose(fit.beta, ols, rtol=1e-7, atol=1e-9)
    with pytest.raises(hm.FormulaError, match="formula nested too deeply: its expression is 1202 levels deep"):
        hm.fit("y ~ I(" + " + ".join(f"x{i}" for i in range(p)) + ") + (1 | g)", df, 0)
