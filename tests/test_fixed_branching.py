"""Branch-and-bound on the fixed effects: its bounds and optima against brute force.

The truth is independent of hiermio's statistics: every support is fitted densely by lstsq
(tests/reference.py), and for a fixed beta the fit over gamma is a dense ridge solve too.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hiermio as hm
from hiermio.formula.design import build_design, random_design_matrix
from hiermio.solve.fixed_branching import SeparableForm, _coordinate_max, branch_on_fixed
from hiermio.solve.oa import SolverOptions, solve
from hiermio.problem.selection import SelectionProblem
from reference import brute_force

FORMULAS = {
    "intercepts": ("y ~ x + w + (1 | g)", "column"),
    "no fixed part": ("y ~ 0 + (1 | g)", "column"),
    "slopes by column": ("y ~ x + (1 + z | g)", "column"),
    "slopes by cluster": ("y ~ x + w + (1 + z | g)", "cluster"),
    "two terms by column": ("y ~ x + (1 | g) + (0 + z | g)", "column"),
    # nested factors: a block per outer level with its (unevenly many) inner levels
    "nested": ("y ~ x + (1 | g/h)", "column"),
    "nested slopes by cluster": ("y ~ x + (1 + z | g/h)", "cluster"),
}
NESTED = {"nested", "nested slopes by cluster"}


def _data(seed: int, K: int, n_per: int) -> pd.DataFrame:
    """Covariates that vary between clusters (so every fixed direction couples the levels),
    sparse cluster effects and uneven cluster sizes."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, n_per + 1, size=K)
    g = np.repeat(np.arange(K), sizes)
    n = len(g)
    shift = rng.normal(size=(K, 2))
    x = rng.normal(size=n) + shift[g, 0]
    w = rng.normal(size=n) * 0.3 + shift[g, 1]
    z = rng.normal(size=n)
    effect = np.where(rng.random(K) < 0.3, rng.normal(scale=2.0, size=K), 0.0)
    slope = np.where(rng.random(K) < 0.3, rng.normal(size=K), 0.0)
    y = 0.5 + x - w + effect[g] + slope[g] * z + rng.normal(size=n)
    h = rng.integers(0, 3, size=n)  # inner levels within g: some clusters have fewer than three
    y += np.where(rng.random(3 * K) < 0.3, rng.normal(scale=1.5, size=3 * K), 0.0)[3 * g + h]
    return pd.DataFrame({"y": y, "x": x, "w": w, "z": z, "g": g, "h": h})


def _problem(kind: str, seed: int, K: int, ridge: float, budget: int):
    formula, selection = FORMULAS[kind]
    if kind in NESTED:  # brute force enumerates both budgets' supports
        K, budget = min(K, 4), min(budget, 2)
    design = build_design(formula, _data(seed, K, 7))
    mu = hm.default_mu(design, ridge)
    sizes = SelectionProblem.group_sizes_of(design, selection)
    return SelectionProblem.build(design, {k: min(budget, n) for k, n in sizes.items()}, mu, selection), design, mu


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(FORMULAS)), seed=st.integers(0, 10**6), K=st.integers(4, 7),
       ridge=st.sampled_from([1e-3, 0.05, 0.3, 1.0, 5.0]), budget=st.integers(1, 4))
def test_optimum_equals_brute_force(kind, seed, K, ridge, budget):
    problem, design, mu = _problem(kind, seed, K, ridge, budget)
    form = SeparableForm.build(problem)
    assert form is not None, kind
    truth, _ = brute_force(problem, design, mu)
    # one unit per level: the bound is exact to second order and closes any gap; several units per
    # level (a Lagrangian, first-order bound) may stop at the time limit, with a valid bound
    support, cert = branch_on_fixed(problem, [], time_limit=60 if form.sortable else 1, gap=1e-10, form=form)
    assert problem.is_feasible(support)
    assert cert.dual <= truth * (1 + 1e-9) + 1e-9
    assert cert.primal >= truth * (1 - 1e-9) - 1e-9
    if form.sortable:
        assert cert.status in ("optimal", "gap_limit")
        assert cert.primal == pytest.approx(truth, rel=1e-8, abs=1e-9)


def _fit_at_beta(design, mu, cols, beta):
    """min over gamma of ||y - X beta - Z_S gamma||^2 + mu ||gamma||^2 at fixed beta, densely."""
    Z = random_design_matrix(design).toarray()[:, cols]
    r = design.y - design.X @ beta
    gamma = np.linalg.solve(Z.T @ Z + np.diag(mu[cols]), Z.T @ r)
    res = r - Z @ gamma
    return float(res @ res + gamma @ (mu[cols] * gamma))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(FORMULAS)), seed=st.integers(0, 10**6), ridge=st.sampled_from([1e-3, 0.1, 1.0]),
       budget=st.integers(1, 3), width=st.sampled_from([1e-3, 0.05, 0.5, 3.0]))
def test_box_bound_is_below_every_point_in_the_box(kind, seed, ridge, budget, width):
    """The bound of a box, against the exact best fit at points of the box: for each sampled beta,
    every full support is fitted densely with beta held fixed."""
    problem, design, mu = _problem(kind, seed, 5, ridge, budget)
    form = SeparableForm.build(problem)
    rng = np.random.default_rng(seed)
    p = len(form.lam)
    centre = rng.normal(scale=0.5, size=p)
    lo, hi = centre - width * rng.random(p), centre + width * rng.random(p)
    bound = form.bound(lo, hi) * form.value_scale
    groups = [np.flatnonzero(problem.group_of_unit == g) for g in range(len(problem.budgets))]
    supports = [np.concatenate(c) for c in itertools.product(
        *(itertools.combinations(idx, int(lam)) for idx, lam in zip(groups, problem.budgets)))]
    corners = [np.where(np.array(bits, bool), hi, lo) for bits in itertools.product([0, 1], repeat=min(p, 3))]
    points = [lo + (hi - lo) * rng.random(p) for _ in range(6)] + ([c for c in corners] if p <= 3 else [])
    for theta in points:
        beta = form.fixed_effects(theta)
        best = min(_fit_at_beta(design, mu, np.flatnonzero(np.isin(problem.unit_of_col, s)), beta) for s in supports)
        assert bound <= best * (1 + 1e-9) + 1e-9


@pytest.mark.parametrize("kind", ["intercepts", "slopes by cluster"])
def test_auto_search_agrees_with_outer_approximation(kind):
    """The two searches certify the same optimum on a problem too large to enumerate."""
    problem, _, _ = _problem(kind, 3, 14, 0.3, 4)
    opts = SolverOptions(gap=1e-9, enumeration_limit=0, search="fixed_effects")
    s_fixed, c_fixed = solve(problem, [], opts)
    s_oa, c_oa = solve(problem, [np.zeros(problem.n_units)], SolverOptions(gap=1e-9, enumeration_limit=0,
                                                                           search="outer_approximation"))
    assert c_fixed.solver == "branch-and-bound on the fixed effects" and c_oa.solver.startswith("SCIP")
    assert c_fixed.status in ("optimal", "gap_limit") and c_oa.status in ("optimal", "gap_limit")
    assert c_fixed.primal == pytest.approx(c_oa.primal, rel=1e-7)


def test_not_separable_is_refused_by_name():
    df = hm.load_dataset("Penicillin")
    with pytest.raises(hm.HierMIOError, match="search='fixed_effects' needs .* one grouping factor"):
        hm.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", df, 3, search="fixed_effects", enumerate_below=0)
    with pytest.raises(hm.HierMIOError, match="search must be one of"):
        hm.fit("diameter ~ 1 + (1 | plate)", df, 3, search="fixed")


def test_small_ridge_certifies_where_the_relaxation_is_weak():
    """Exam at ridge 0.1: the outer approximation stopped at a 1.4 % gap after 30 s; branching on
    the fixed effects proves the 0.01 % gap, and its optimum is no worse than SCIP's incumbent."""
    exam = hm.load_dataset("Exam")
    fit = hm.fit("normexam ~ standLRT + sex + (1 | school)", exam, 10, ridge=0.1, time_limit=30, progress=False)
    assert fit.certificate.status in ("optimal", "gap_limit")
    assert fit.certificate.gap <= 1e-4
    oa = hm.fit("normexam ~ standLRT + sex + (1 | school)", exam, 10, ridge=0.1, time_limit=3, progress=False,
                search="outer_approximation")
    assert fit.certificate.primal <= oa.certificate.primal * (1 + 1e-9)
    assert oa.certificate.dual <= fit.certificate.primal


def test_ctrl_c_returns_the_incumbent_and_a_valid_bound(monkeypatch):
    """Ctrl-C inside the search: the best support so far, with the bound of the boxes still open."""
    problem, design, mu = _problem("intercepts", 11, 7, 0.001, 3)
    truth, _ = brute_force(problem, design, mu)
    form = SeparableForm.build(problem)
    calls = {"n": 0}
    real = form.first_order_bound

    def interrupted(lo, hi):
        calls["n"] += 1
        if calls["n"] > 6:
            raise KeyboardInterrupt
        return real(lo, hi)

    monkeypatch.setattr(form, "first_order_bound", interrupted)
    support, cert = branch_on_fixed(problem, [], gap=0.0, form=form)
    assert cert.status == "interrupted" and problem.is_feasible(support)
    assert cert.dual <= truth * (1 + 1e-9) <= cert.primal * (1 + 2e-9)


def test_auto_hands_a_stubborn_lagrangian_gap_to_scip():
    """Several units per level on a small problem: the Lagrangian's duality gap keeps boxes open,
    so "auto" passes its incumbent and bound to SCIP after a few hundred boxes; the optimum is the
    enumerated one."""
    from reference import simulate

    df = simulate(seed=11, K=8, slope=True)
    fit = hm.fit("y ~ x + (1 + z | g)", df, 5, ridge=0.5, gap=0.0, progress=False)
    enum = hm.fit("y ~ x + (1 + z | g)", df, 5, ridge=0.5, enumerate_below=10**5, progress=False)
    assert enum.certificate.solver.startswith("enumeration")
    assert fit.certificate.solver.startswith("branch-and-bound on the fixed effects (200 boxes), then SCIP")
    assert fit.certificate.status == "optimal"
    assert fit.certificate.primal == pytest.approx(enum.certificate.primal, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nested_factors_reach_the_enumerated_optimum(seed):
    """Nested factors, uneven inner levels: "auto" branches on the fixed effects (handing over to
    SCIP if the Lagrangian stalls) and certifies the optimum that enumeration finds."""
    df = _data(seed, 5, 6)
    opts = dict(ridge=0.2, gap=0.0, progress=False)
    fit = hm.fit("y ~ x + (1 | g/h)", df, 2, enumerate_below=0, **opts)
    enum = hm.fit("y ~ x + (1 | g/h)", df, 2, enumerate_below=10**6, **opts)
    assert enum.certificate.solver.startswith("enumeration")
    assert fit.certificate.solver.startswith("branch-and-bound on the fixed effects")
    assert fit.certificate.status in ("optimal", "gap_limit") and fit.certificate.gap <= 1e-9
    assert fit.certificate.primal == pytest.approx(enum.certificate.primal, rel=1e-9)


def test_pastes_nested_certifies_at_a_small_ridge():
    """lme4's Pastes, (1 | batch/cask): SCIP's outer approximation stopped at a gap of several
    percent in 30 s at ridge 0.1; the blocks of a batch with its casks are separable given the
    fixed effects, and branching on them certifies. At ridge 1, both certify the same optimum."""
    pastes = hm.load_dataset("Pastes")
    formula = "strength ~ 1 + (1 | batch/cask)"
    auto = hm.fit(formula, pastes, 8, ridge=1.0, gap=1e-9, progress=False)
    oa = hm.fit(formula, pastes, 8, ridge=1.0, gap=1e-9, progress=False, search="outer_approximation")
    assert auto.certificate.solver.startswith("branch-and-bound on the fixed effects")
    assert oa.certificate.status == "optimal"
    assert auto.certificate.primal == pytest.approx(oa.certificate.primal, rel=1e-8)
    small = hm.fit(formula, pastes, 8, ridge=0.1, time_limit=30, progress=False)
    assert small.certificate.status in ("optimal", "gap_limit") and small.certificate.gap <= 1e-4
    with pytest.warns(hm.HierMIOWarning, match="time limit"):
        oa_small = hm.fit(formula, pastes, 8, ridge=0.1, time_limit=2, progress=False, search="outer_approximation")
    assert small.certificate.primal <= oa_small.certificate.primal * (1 + 1e-9)
    assert oa_small.certificate.dual <= small.certificate.primal


@pytest.mark.parametrize("K", [1, 7, 40, 900])  # 900 levels: the breakpoints are searched by bisection
def test_each_multiplier_is_maximised_exactly(K):
    # truth: the concave dual evaluated on a fine grid of multipliers
    rng = np.random.default_rng(K)
    for _ in range(20):
        cost = np.array([0, 1, 1, 2, 3])
        ell = rng.exponential(size=(5, K)) + np.array([4.0, 2, 2, 1, 0])[:, None] * rng.exponential(size=K)
        budget = float(rng.integers(0, 3 * K))
        t, value = _coordinate_max(ell, cost, budget)
        grid = np.linspace(0.0, ell.max() + 1.0, 20_001)
        dual = np.array([(ell + g * cost[:, None]).min(axis=0).sum() - g * budget for g in grid])
        at_t = (ell + t * cost[:, None]).min(axis=0).sum() - t * budget
        assert abs(at_t - value) <= 1e-9 * max(1.0, abs(value))  # the value is the dual's at t
        assert value >= dual.max() - 1e-9 * max(1.0, abs(value))  # and no multiplier does better
