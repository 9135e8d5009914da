"""The certified optimum against independent truths: brute force and closed forms."""

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hiermio as hm
from hiermio.fitting.api import default_mu
from hiermio.formula.design import build_design
from hiermio.solve.oa import SolverOptions, solve
from hiermio.problem.selection import SelectionProblem
from reference import brute_force, dense_ridge, simulate

CASES = [
    # formula, data options, budget, selection
    ("y ~ x + (1 | g)", dict(K=10, n_nonzero=3), 3, "column"),
    ("y ~ x + (1 | g)", dict(K=9, n_nonzero=4, effect=0.4), 5, "column"),
    ("y ~ x + (1 + z | g)", dict(K=6, slope=True), 4, "column"),
    ("y ~ x + (1 + z | g)", dict(K=8, slope=True), 3, "cluster"),
    ("y ~ x + (1 + z || g)", dict(K=5, slope=True), {"(1 | g)": 2, "(0 + z | g)": 1}, "column"),
    ("y ~ x + (1 | g) + (1 | h)", dict(K=7, crossed=True), {"g": 2, "h": 2}, "column"),
    ("y ~ 0 + (1 | g)", dict(K=10), 4, "column"),
]


@pytest.mark.parametrize("formula, sim, budget, selection", CASES)
def test_certified_optimum_matches_brute_force(formula, sim, budget, selection):
    df = simulate(seed=7, **sim)
    res = hm.fit(formula, df, budget, selection=selection, gap=0.0, ridge=0.3, refit=False)
    design = res.design
    best, units = brute_force(res.problem, design, res.mu)
    assert res.certificate.status in ("optimal", "closed_form")
    assert res.certificate.primal == pytest.approx(best, rel=1e-8)
    assert res.certificate.dual <= best * (1 + 1e-8)
    # the reported estimates are those of the certified support, fitted densely
    cols = np.flatnonzero(np.isin(res.problem.unit_of_col, np.flatnonzero(res.support)))
    val, beta, gamma = dense_ridge(design, res.mu, cols)
    assert val == pytest.approx(best, rel=1e-8)
    np.testing.assert_allclose(res.beta, beta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.gamma[cols], gamma, rtol=1e-6, atol=1e-9)


def test_budget_zero_is_ols_on_fixed_part():
    df = simulate(K=12)
    res = hm.fit("y ~ x + z + (1 + z | g)", df, budget=0)
    X = np.column_stack([np.ones(len(df)), df.x, df.z])
    ols = np.linalg.lstsq(X, df.y.to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(res.fixef().to_numpy(), ols, rtol=1e-10)
    assert res.n_nonzero == 0 and res.certificate.status == "closed_form"


def test_full_budget_is_closed_form_ridge():
    df = simulate(K=6, slope=True)
    res = hm.fit("y ~ x + (1 + z | g)", df, budget=12, ridge=0.5, refit=False)
    n, K = len(df), 6
    # explicit augmented design [X : Z] with Z = z * 1[g == k], ridge on Z only
    X = np.column_stack([np.ones(n), df.x])
    Z = np.zeros((n, 2 * K))
    for k in range(K):
        rows = df.g.to_numpy() == k
        Z[rows, 2 * k] = 1.0
        Z[rows, 2 * k + 1] = df.z.to_numpy()[rows]
    A = np.hstack([X, Z])
    P = np.diag(np.concatenate([[0, 0], res.mu]))
    theta = np.linalg.solve(A.T @ A + P, A.T @ df.y.to_numpy())
    np.testing.assert_allclose(res.beta, theta[:2], rtol=1e-9)
    np.testing.assert_allclose(res.gamma, theta[2:], rtol=1e-8, atol=1e-10)
    assert res.certificate.status == "closed_form"


def test_invariant_to_row_order_and_level_labels():
    df = simulate(K=10, n_nonzero=3, seed=3)
    a = hm.fit("y ~ x + (1 | g)", df, budget=3, gap=0.0)
    shuffled = df.sample(frac=1.0, random_state=1)
    relabel = {k: f"L{(7 * k + 3) % 10}" for k in range(10)}
    shuffled = shuffled.assign(g=shuffled.g.map(relabel))
    b = hm.fit("y ~ x + (1 | g)", shuffled, budget=3, gap=0.0)
    assert b.certificate.primal == pytest.approx(a.certificate.primal, rel=1e-10)
    np.testing.assert_allclose(b.fixef(), a.fixef(), rtol=1e-9)
    assert sorted(b.selected["(1 | g)"]) == sorted(relabel[k] for k in a.selected["(1 | g)"])
    ea = a.ranef()["g"].rename(index=relabel).sort_index()
    eb = b.ranef()["g"].sort_index()
    np.testing.assert_allclose(eb.to_numpy(), ea.to_numpy(), rtol=1e-8, atol=1e-12)


def test_deterministic_for_fixed_seed():
    df = simulate(K=20, n_per=6, n_nonzero=6, effect=0.5, seed=11)
    runs = [hm.fit("y ~ x + (1 | g)", df, budget=6, seed=5, gap=0.0) for _ in range(2)]
    assert runs[0].certificate.nodes == runs[1].certificate.nodes
    np.testing.assert_array_equal(runs[0].support, runs[1].support)
    assert runs[0].certificate.primal == runs[1].certificate.primal


def test_time_limit_returns_best_solution_with_gap():
    df = simulate(K=150, n_per=4, n_nonzero=40, effect=0.35, seed=2)
    res = hm.fit("y ~ x + (1 | g)", df, budget=40, ridge=0.05, time_limit=0.5, gap=0.0)
    assert res.certificate.status in ("time_limit", "optimal")
    assert np.count_nonzero(res.support) == 40
    assert res.certificate.dual <= res.certificate.primal
    if res.certificate.status == "time_limit":
        assert res.certificate.gap > 0
    assert res.n_nonzero <= 40


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    K=st.integers(3, 8),
    n_per=st.integers(2, 6),
    seed=st.integers(0, 10_000),
    ridge=st.floats(0.01, 5.0),
    slope=st.booleans(),
    data=st.data(),
)
def test_bounds_bracket_brute_force_on_random_designs(K, n_per, seed, ridge, slope, data):
    df = simulate(K=K, n_per=n_per, n_nonzero=min(2, K), slope=slope, seed=seed)
    formula = "y ~ x + (1 + z | g)" if slope else "y ~ x + (1 | g)"
    design = build_design(formula, df)
    mu = default_mu(design, ridge)
    units = design.n_columns
    budget = data.draw(st.integers(0, min(units, 4)))
    problem = SelectionProblem.build(design, budget, mu)
    support, cert = solve(problem, [problem.top_within_budget(np.zeros(units))], SolverOptions(gap=0.0))
    best, _ = brute_force(problem, design, mu)
    tol = 1e-8 * max(1.0, abs(best))
    assert cert.dual <= best + tol
    assert best <= cert.primal + tol
    assert cert.primal == pytest.approx(best, rel=1e-7, abs=1e-9)


def test_heuristics_past_their_deadline_still_return_a_full_feasible_support():
    from hiermio.formula.design import build_design
    from hiermio.solve.heuristics import greedy, local_search
    from hiermio.problem.selection import SelectionProblem

    df = simulate(K=30, n_per=6, n_nonzero=5, effect=1.5, seed=4)
    problem = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), budget=7, mu=np.ones(30))
    past = time.perf_counter() - 1.0
    s = greedy(problem, deadline=past)
    # out of time, the budget is filled by the steepest gradient at the empty support
    _, grad = problem.evaluate(np.zeros(30))
    assert np.flatnonzero(s).tolist() == sorted(np.argsort(grad, kind="stable")[:7].tolist())
    full = local_search(problem, greedy(problem))
    late = local_search(problem, s, deadline=past)
    assert late.sum() == 7 and problem.value(late) <= problem.value(s)  # at most one improving swap
    assert problem.value(full) <= problem.value(late) + 1e-9


def test_large_crossed_supports_solved_iteratively_match_a_dense_fit():
    from reference import dense_ridge
    from hiermio.problem.sufficient import _DENSE_LIMIT, SufficientStats

    rng = np.random.default_rng(7)
    n = 3000
    df = pd.DataFrame({"g": rng.integers(0, 300, n), "h": rng.integers(0, 200, n), "x": rng.normal(size=n)})
    df["y"] = 0.5 * df.x + rng.normal(size=300)[df.g] * 0.5 + rng.normal(size=200)[df.h] * 0.5 + rng.normal(size=n)
    design = build_design("y ~ x + (1 | g) + (1 | h)", df)
    mu = default_mu(design, 0.1)
    stats = SufficientStats.from_design(design, mu)
    cols = np.arange(design.n_columns)
    assert cols.size > _DENSE_LIMIT and stats.blocks is None  # the iterative path
    ev = stats.evaluate(np.ones(cols.size))
    value, beta, gamma = dense_ridge(design, mu, cols)
    assert ev.value == pytest.approx(value, rel=1e-10)
    np.testing.assert_allclose(ev.beta, beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ev.gamma, gamma, rtol=1e-7, atol=1e-9)
