import numpy as np
import pytest

import hiermio as hm
from hiermio import BudgetError, DataError, HierMIOError
from reference import dense_least_squares, simulate


@pytest.fixture(scope="module")
def slopes_fit():
    return hm.fit("Reaction ~ Days + (1 + Days | Subject)", hm.load_dataset("sleepstudy"), budget=5, gap=0.0)


def test_lme4_names_are_consistent(slopes_fit):
    f = slopes_fit
    fe, re, co = f.fixef(), f.ranef()["Subject"], f.coef()["Subject"]
    assert list(fe.index) == ["(Intercept)", "Days"]
    assert list(re.columns) == ["(Intercept)", "Days"] and len(re) == 18
    np.testing.assert_allclose(co.to_numpy(), re.to_numpy() + fe.to_numpy()[None, :])
    assert (re != 0).to_numpy().sum() <= 5
    assert sorted(f.selected["(1 + Days | Subject)"]) == sorted(re.index[(re != 0).any(axis=1)])


def test_sigma_and_icc_follow_their_definitions(slopes_fit):
    f = slopes_fit
    r = f.residuals().to_numpy()
    assert f.sigma == pytest.approx(np.sqrt(r @ r / (180 - 2 - f.n_nonzero)), rel=1e-10)
    v = np.mean(f.ranef()["Subject"]["(Intercept)"].to_numpy() ** 2)
    assert f.icc["Subject"] == pytest.approx(v / (v + f.sigma**2), rel=1e-12)
    vc = f.VarCorr()
    assert vc.iloc[-1]["Groups"] == "Residual" and vc.iloc[-1]["Std.Dev."] == pytest.approx(f.sigma)


def test_fitted_equals_augmented_design_prediction(slopes_fit):
    f = slopes_fit
    cols = np.flatnonzero(f.gamma)
    _, beta, gamma = dense_least_squares(f.design, cols)  # the refit: no ridge on the selected columns
    np.testing.assert_allclose(f.fixef().to_numpy(), beta, rtol=1e-6)
    np.testing.assert_allclose(f.predict().to_numpy(), f.fitted().to_numpy())
    df = hm.load_dataset("sleepstudy")
    np.testing.assert_allclose(f.predict(df).to_numpy(), f.fitted().to_numpy(), rtol=1e-12)


def test_predict_population_and_new_levels(slopes_fit):
    f = slopes_fit
    df = hm.load_dataset("sleepstudy")
    pop = f.predict(df, re_form="~0").to_numpy()
    np.testing.assert_allclose(pop, f.fixef()["(Intercept)"] + f.fixef()["Days"] * df.Days.to_numpy())
    for form in (np.nan, False, "NA"):
        np.testing.assert_allclose(f.predict(df, re_form=form).to_numpy(), pop)
    new = df.head(4).assign(Subject=[999, 999, 308, 308])
    got = f.predict(new, allow_new_levels=True).to_numpy()
    np.testing.assert_allclose(got[:2], pop[:2])
    c308 = f.coef()["Subject"].loc[308]
    np.testing.assert_allclose(got[2:], c308["(Intercept)"] + c308["Days"] * new.Days.to_numpy()[2:])
    with pytest.raises(DataError, match=r"level\(s\) \['999'\] not seen in training"):
        f.predict(new)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['Days'\]"):
        f.predict(df[["Subject"]])
    with pytest.raises(DataError, match=r"missing values in column\(s\) \['Days'\]"):
        f.predict(df.head(2).assign(Days=[1.0, np.nan]))


def test_summary_reads_like_lme4(slopes_fit):
    text = str(slopes_fit.summary())
    for piece in ["Formula: Reaction ~ Days + (1 + Days | Subject)", "Random effects", "Residual",
                  "Number of obs: 180, groups:  Subject, 18", "Fixed effects", "Std. Error", "status optimal",
                  "(1 + Days | Subject) <= 5 of 36 columns"]:
        assert piece in text, piece
    coefs = slopes_fit.summary().coefficients()
    assert list(coefs.columns) == ["Estimate", "Std. Error", "t value", "Pr(>|t|)"]
    assert (coefs["Std. Error"] > 0).all()


def test_cluster_selection_moves_intercept_and_slope_together():
    df = hm.load_dataset("sleepstudy")
    f = hm.fit("Reaction ~ Days + (1 + Days | Subject)", df, budget=4, selection="cluster", gap=0.0)
    re = f.ranef()["Subject"]
    nonzero = (re != 0)
    assert nonzero.any(axis=1).sum() == 4
    assert (nonzero["(Intercept)"] == nonzero["Days"]).all()


def test_crossed_factors_give_one_ranef_table_each():
    df = simulate(K=7, crossed=True)
    f = hm.fit("y ~ x + (1 | g) + (1 | h)", df, budget={"g": 2, "h": 1}, gap=0.0)
    assert set(f.ranef()) == {"g", "h"}
    assert (f.ranef()["g"] != 0).to_numpy().sum() <= 2 and (f.ranef()["h"] != 0).to_numpy().sum() <= 1
    assert set(f.icc.index) == {"g", "h"}


@pytest.mark.parametrize(
    "budget, message",
    [
        (-1, "out of range: it must be at least 0"),  # one above the levels is capped (tests/test_trust_rows.py)
        (2.5, "must be a whole number, got 2.5"),
        ({"(1 | gg)": 1}, "unknown random term"),
        ({}, "gives no value for random term"),
    ],
)
def test_bad_budgets_are_named(budget, message):
    with pytest.raises(BudgetError, match=message):
        hm.fit("y ~ x + (1 | g)", simulate(K=8), budget)


@pytest.mark.parametrize(
    "kw, message",
    [(dict(ridge=0), "ridge must be a finite number above 0"), (dict(time_limit=-1), "time_limit"),
     (dict(gap=1.5), "gap must be a finite number in"), (dict(selection="rows"), "selection must be")],
)
def test_bad_options_are_named(kw, message):
    with pytest.raises(HierMIOError, match=message):
        hm.fit("y ~ x + (1 | g)", simulate(K=8), 2, **kw)


def test_progress_callback_reports_bounds():
    df = simulate(K=60, n_per=5, n_nonzero=12, effect=0.4, seed=4)
    seen = []
    f = hm.fit("y ~ x + (1 | g)", df, budget=12, ridge=0.05, time_limit=3, gap=0.0, callback=seen.append)
    if f.certificate.time > 1.0:
        assert seen, "a search longer than a second reports progress"
    for p in seen:
        assert p.dual <= p.primal * (1 + 1e-9) and p.nodes >= 0


def test_timings_add_up(slopes_fit):
    t = slopes_fit.timings
    assert set(t) == {"design", "first_solution", "local_search", "search", "total"}
    assert all(v >= 0 for v in t.values())
    assert t["design"] + t["first_solution"] + t["local_search"] + t["search"] <= t["total"] + 1e-6


def test_certificate_states_the_gap_relative_to_what_the_cluster_effects_explain():
    """c(0) is the fit without cluster effects: ordinary least squares on X (numpy's lstsq)."""
    import warnings

    from hiermio.formula.design import build_design

    df = simulate(K=40, n_per=10, n_nonzero=8, effect=0.8, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hm.HierMIOWarning)
        fit = hm.fit("y ~ x + (1 | g)", df, 8, ridge=0.05, certify=False)
    d = build_design("y ~ x + (1 | g)", df)
    r = d.y - d.X @ np.linalg.lstsq(d.X, d.y, rcond=None)[0]
    c = fit.certificate
    assert c.null == pytest.approx(float(r @ r), rel=1e-9)
    assert c.signal_gap == pytest.approx((c.primal - c.dual) / (float(r @ r) - c.primal), rel=1e-9)
    assert c.signal_gap > c.gap  # the cluster effects explain less than the whole objective
    assert "of what the cluster effects explain" in str(fit.summary())
