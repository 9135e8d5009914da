"""Tail budgets: at most a levels below the population and b above. The truths: scipy's bounded
least squares (bvls) on the stacked ridge system, and brute force over every sign-constrained support."""

import numpy as np
import pytest

import hiermio as hm
from hiermio.fitting.api import build_problem
from hiermio.core.control import FitControl
from hiermio.core.exceptions import BudgetError
from reference import brute_force_tails, dense_signed_ridge, simulate


def _problem(formula, df, budget, ridge=0.3):
    return build_problem(formula, df, budget, FitControl(ridge=ridge))


@pytest.mark.parametrize("formula, tailed, seed", [
    ("y ~ x + (1 | g)", "(1 | g)", 0),
    ("y ~ 1 + (1 | g)", "(1 | g)", 1),
    ("y ~ x + (1 | g) + (0 + z | g)", "(1 | g)", 2),   # a free slope term beside the signed intercepts
    ("y ~ x + (1 | g) + (1 | h)", "(1 | h)", 3),        # crossed: the signed term is the second factor
])
def test_signed_evaluation_equals_bounded_least_squares_at_fractional_s(formula, tailed, seed):
    df = simulate(K=6, n_per=8, n_nonzero=3, effect=1.5, seed=seed, crossed="h" in formula)
    budget = {t: (1, 1) if t == tailed else 1 for t in ["(1 | g)", "(0 + z | g)", "(1 | h)"] if t in formula}
    problem = _problem(formula, df, budget)
    stats, design = problem.stats, problem.design
    rng = np.random.default_rng(seed)
    for _ in range(6):
        s = rng.uniform(0, 1, stats.m) * (rng.uniform(size=stats.m) < 0.7)
        ev = stats.evaluate(s)
        below = stats.source[(stats.sign < 0) & (s > 0)]
        above = stats.source[(stats.sign > 0) & (s > 0)]
        free = stats.source[(stats.sign == 0) & (s > 0)]
        scale = np.r_[s[(stats.sign < 0) & (s > 0)], s[(stats.sign > 0) & (s > 0)], s[(stats.sign == 0) & (s > 0)]]
        value, beta, gamma = dense_signed_ridge(design, stats.column_mu, below, above, free, s=scale)
        assert ev.value == pytest.approx(value, rel=1e-8)
        np.testing.assert_allclose(ev.beta, beta, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ev.gamma, gamma, rtol=1e-6, atol=1e-7)
        signed = stats.source[stats.sign != 0]
        assert np.all(ev.gamma[np.setdiff1d(signed, np.r_[below, above])] == 0)


def test_signed_gradient_matches_finite_differences():
    df = simulate(K=5, n_per=8, n_nonzero=2, effect=1.5, seed=4)
    stats = _problem("y ~ x + (1 | g)", df, {"(1 | g)": (2, 2)}).stats
    s = np.random.default_rng(1).uniform(0.2, 0.9, stats.m)
    ev, h = stats.evaluate(s), 1e-6
    for j in range(stats.m):
        e = np.zeros(stats.m)
        e[j] = h
        fd = (stats.evaluate(s + e).value - stats.evaluate(s - e).value) / (2 * h)
        assert ev.grad[j] == pytest.approx(fd, rel=1e-4, abs=1e-6 * abs(ev.value))
    # a side the residual points away from buys nothing: its derivative is exactly zero
    assert np.count_nonzero(ev.grad[stats.sign > 0] == 0) + np.count_nonzero(ev.grad[stats.sign < 0] == 0) >= 5


@pytest.mark.parametrize("below, above, enumerate_below", [(1, 2, 0), (2, 1, 0), (0, 2, 2000), (2, 2, 0), (3, 0, 0)])
def test_certified_tail_optimum_equals_brute_force(below, above, enumerate_below):
    df = simulate(K=7, n_per=6, n_nonzero=4, effect=1.2, seed=below * 10 + above)
    budget = {"(1 | g)": (below, above)}
    fit = hm.fit("y ~ x + (1 | g)", df, budget, ridge=0.3, gap=0.0, refit=False, enumerate_below=enumerate_below)
    best, (B, A) = brute_force_tails(fit.design, fit.mu, below, above)
    assert fit.certificate.status == "optimal"
    assert fit.certificate.primal == pytest.approx(best, rel=1e-8)
    effects = fit.gamma
    assert np.count_nonzero(effects < 0) <= below and np.count_nonzero(effects > 0) <= above
    assert fit.budgets == {"(1 | g)": (below, above)}


def test_tail_refit_is_sign_constrained_least_squares_on_the_support():
    df = simulate(K=8, n_per=8, n_nonzero=4, effect=1.5, seed=9)
    fit = hm.fit("y ~ x + (1 | g)", df, {"(1 | g)": (2, 2)}, ridge=0.3, gap=0.0)
    stats, s = fit.problem.stats, np.asarray(fit.support, float)
    below, above = stats.source[(stats.sign < 0) & (s > 0)], stats.source[(stats.sign > 0) & (s > 0)]
    _, beta, gamma = dense_signed_ridge(fit.design, fit.estimate_mu, below, above)
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fit.gamma, gamma, rtol=1e-6, atol=1e-8)
    assert set(fit.selected["(1 | g)"]) == set(fit.design.terms[0].levels[np.flatnonzero(fit.gamma)])


def test_tails_on_real_data_split_the_budget_by_sign():
    exam = hm.load_dataset("Exam")
    fit = hm.fit("normexam ~ standLRT + (1 | school)", exam, {"(1 | school)": (3, 5)}, ridge=1.0)
    eff = fit.ranef()["school"]["(Intercept)"]
    assert (eff < 0).sum() <= 3 and (eff > 0).sum() <= 5 and (eff != 0).sum() >= 6
    assert fit.certificate.status in ("optimal", "gap_limit") and fit.certificate.gap <= 1e-4
    # the symmetric budget of the same size can do no worse (it allows every sign pattern)
    free = hm.fit("normexam ~ standLRT + (1 | school)", exam, 8, ridge=1.0)
    assert free.certificate.primal <= fit.certificate.primal * (1 + 1e-9)
    assert "below" in str(fit.summary()) and "above" in str(fit.summary())


@pytest.mark.parametrize("formula, budget, selection, match", [
    ("y ~ x + (1 + z | g)", {"(1 + z | g)": (1, 1)}, "column", r"one coefficient per level.*\(1 \+ z \| g\) has 2"),
    ("y ~ x + (1 | g)", {"g": (1, 1)}, "cluster", r"tail budget for g needs selection='column'"),
    ("y ~ x + (1 | g)", {"(1 | g)": (1, 1, 1)}, "column", r"pair \(below, above\), got \(1, 1, 1\)"),
    ("y ~ x + (1 | g)", {"(1 | g)": (1, -1)}, "column", r"budget -1 for random term \(1 \| g\) \(above\) is out of range"),
    ("y ~ x + (1 | g)", {"(1 | g)": (1.5, 1)}, "column", r"\(1 \| g\) \(below\) must be a whole number"),
])
def test_bad_tail_budgets_are_named(formula, budget, selection, match):
    df = simulate(K=6, n_per=5, seed=0, slope=True)
    with pytest.raises(BudgetError, match=match):
        hm.fit(formula, df, budget, selection=selection)


def test_another_budget_for_a_tailed_problem_must_keep_its_tails():
    df = simulate(K=6, n_per=5, seed=0)
    problem = _problem("y ~ x + (1 | g)", df, {"(1 | g)": (1, 1)})
    assert problem.with_budget({"(1 | g)": (2, 0)}).budgets.tolist() == [2, 0]
    with pytest.raises(BudgetError, match=r"tail budgets on \['\(1 \| g\)'\]"):
        problem.with_budget(2)
