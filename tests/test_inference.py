"""Standard errors against independent truths: the support's cluster-robust covariance is
statsmodels' OLS with cov_type="cluster" on the same design (the fixed part and the selected
columns); the selection-aware one is least trimmed squares' closed-form variance in the location
model, and the cluster bootstrap's on Exam."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hiermio as hm
from hiermio.formula.design import random_design_matrix
from reference import simulate


def _support_design(fit):
    Z = random_design_matrix(fit.design).toarray()
    return np.hstack([fit.design.X, Z[:, np.flatnonzero(fit.gamma)]])


@pytest.mark.parametrize("formula, sim, budget", [
    ("y ~ x + (1 | g)", dict(K=12, n_per=9, n_nonzero=3), 3),
    ("y ~ x + z + (1 + z | g)", dict(K=10, n_per=8, slope=True), 4),
])
def test_robust_covariance_is_statsmodels_cluster(formula, sim, budget):
    df = simulate(seed=3, **sim)
    fit = hm.fit(formula, df, budget)
    ols = sm.OLS(fit.design.y, _support_design(fit)).fit(cov_type="cluster",
                                                           cov_kwds={"groups": fit.design.terms[0].codes})
    p = fit.design.p
    np.testing.assert_allclose(fit.fixef().to_numpy(), ols.params[:p], rtol=1e-6)
    np.testing.assert_allclose(fit.vcov("support").to_numpy(), ols.cov_params()[:p, :p], rtol=1e-5)
    table = fit.summary().coefficients("support")
    np.testing.assert_allclose(table["Std. Error"], ols.bse[:p], rtol=1e-5)
    assert "cluster-robust (CR1) by g, selection-aware" in str(fit.summary())


def test_robust_covariance_with_weights_is_statsmodels_wls_cluster():
    df = simulate(K=10, n_per=8, seed=4)
    w = np.random.default_rng(1).uniform(0.5, 2, len(df))
    fit = hm.fit("y ~ x + (1 | g)", df.assign(w=w), 3, weights="w")
    wls = sm.WLS(fit.design.y, _support_design(fit), weights=w).fit(cov_type="cluster",
                                                                      cov_kwds={"groups": fit.design.terms[0].codes})
    np.testing.assert_allclose(fit.vcov("support").to_numpy(), wls.cov_params()[:2, :2], rtol=1e-5)


def test_conditional_covariance_is_ols_on_the_support_design():
    df = simulate(K=10, n_per=8, seed=5)
    fit = hm.fit("y ~ x + (1 | g)", df, 3)
    ols = sm.OLS(fit.design.y, _support_design(fit)).fit()
    np.testing.assert_allclose(fit.vcov("conditional").to_numpy(), ols.cov_params()[:2, :2], rtol=1e-5)


def test_confint_is_wald_on_clusters_minus_one_df():
    from scipy import stats

    df = simulate(K=10, n_per=8, seed=6)
    fit = hm.fit("y ~ x + (1 | g)", df, 3)
    ci = fit.confint(0.9)
    se = np.sqrt(np.diag(fit.vcov().to_numpy()))
    q = stats.t.ppf(0.95, 9)
    np.testing.assert_allclose(ci.iloc[:, 0], fit.fixef() - q * se)
    np.testing.assert_allclose(ci.iloc[:, 1], fit.fixef() + q * se)
    with pytest.raises(hm.HierMIOError, match=r"kind must be one of \['robust', 'support', 'conditional'\], got 'sandw"):
        fit.vcov("sandwich")
    with pytest.raises(hm.HierMIOError, match=r"kind must be one of \[.*'bootstrap'\], got 'sandwich'"):
        fit.confint(kind="sandwich")
    with pytest.raises(hm.HierMIOError, match="cluster must name a grouping factor"):
        fit.vcov(cluster="school")


def test_cluster_level_covariate_gets_a_larger_standard_error_than_the_conditional_one():
    """Exam's schavg: the conditional SE treats unselected schools as exactly the population and was
    about a third of lme4's; the robust one clusters the residuals by school."""
    exam = hm.load_dataset("Exam")
    fit = hm.fit("normexam ~ standLRT + schavg + (1 | school)", exam, 10, ridge=1.0)
    robust = fit.summary().coefficients().loc["schavg", "Std. Error"]
    conditional = np.sqrt(fit.vcov("conditional").loc["schavg", "schavg"])
    assert robust > 1.5 * conditional
    assert isinstance(fit.vcov(), pd.DataFrame)


def test_selection_aware_se_is_least_trimmed_squares_variance_in_the_location_model():
    """y = 2 + gamma_g + e with Gaussian gamma: with budget k the intercept is least trimmed squares
    of the cluster means, trimming a share k/G; its variance is v / (G (P - 2 q phi(q))) with
    v = Var(cluster mean), P = 1 - k/G, q = Phi^-1(1 - k/(2G)). The support's CR1 misses the
    boundary term by a factor of two or more."""
    from scipy.stats import norm

    G, n, k = 400, 20, 60
    truth = np.sqrt((1.0 + 1.0 / n) / (G * ((1 - k / G) - 2 * norm.ppf(1 - k / (2 * G)) * norm.pdf(norm.ppf(1 - k / (2 * G))))))
    aware, support = [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        g = np.repeat(np.arange(G), n)
        df = pd.DataFrame({"y": 2 + rng.normal(size=G)[g] + rng.normal(size=G * n), "g": g})
        fit = hm.fit("y ~ 1 + (1 | g)", df, k, ridge=1e-3, certify=False)
        aware.append(np.sqrt(fit.vcov().iloc[0, 0]))
        support.append(np.sqrt(fit.vcov("support").iloc[0, 0]))
    assert 0.8 < np.mean(aware) / truth < 1.25
    assert np.mean(support) / truth < 0.7


def test_exam_cluster_level_covariate_se_is_within_1_5_of_the_cluster_bootstrap():
    exam = hm.load_dataset("Exam")
    fit = hm.fit("normexam ~ standLRT + schavg + (1 | school)", exam, 10, ridge=1.0)
    boot = hm.bootstrap(fit, B=60, random_state=1, progress=False)
    se = fit.summary().coefficients()["Std. Error"]
    for name in ("(Intercept)", "schavg"):
        assert 1 / 1.5 < se[name] / boot.loc[name, "se"] < 1.5, (name, se[name], boot.loc[name, "se"])
    assert fit.vcov("support").loc["schavg", "schavg"] ** 0.5 < boot.loc["schavg", "se"] / 1.5  # the old default
