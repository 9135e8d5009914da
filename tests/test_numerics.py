"""Numerics against independent truths: offsets and scales of every column change nothing.

The truth is a dense least-squares solve (``conftest.dense_ridge``: lstsq on the stacked ridge
system) of the same problem written without the offsets and scales, which is well conditioned.
Shifting a covariate by a constant (with an intercept in the model) and scaling any column are
exact reparametrisations, so the objective must not move and the estimates must move exactly as
the algebra says. Before the statistics were built from a QR of the centred columns, x + 1e8 gave
x's coefficient -0.16 for a truth of 1.01 and an objective below the true minimum.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hiermio as hm
from hiermio.fitting.api import default_mu
from hiermio.formula.design import build_design
from hiermio.problem.selection import SelectionProblem
from reference import brute_force, dense_ridge

OFFSETS = [0.0, 1e4, 1e6, 1e8, 1e10]
SCALES = [1e-8, 1e-4, 1.0, 1e4, 1e8]


def _data(K: int, n_per: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = K * n_per
    df = pd.DataFrame({"g": np.repeat([f"k{i}" for i in range(K)], n_per), "x": rng.normal(size=n),
                       "w": rng.normal(size=n), "z": rng.normal(size=n)})
    eff = np.where(np.arange(K) < 2, 2.0, 0.0)
    df["y"] = 1 + df.x - 0.5 * df.w + eff[np.arange(n) // n_per] * (1 + 0.5 * df.z) + rng.normal(size=n)
    return df


def _transformed(df: pd.DataFrame, offsets: dict, scales: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data with each column shifted and scaled, and the same data as represented, undone.

    x_o = fl(x s + o): the truth is computed from (x_o - o) / s, the numbers hiermio actually saw.
    """
    seen, truth = df.copy(), df.copy()
    for c in ("x", "w", "y", "z"):
        o, s = offsets.get(c, 0.0), scales.get(c, 1.0)
        seen[c] = df[c] * s + o
        truth[c] = (seen[c] - o) / s
    return seen, truth


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    K=st.integers(3, 6),
    n_per=st.integers(3, 8),
    ox=st.sampled_from(OFFSETS), ow=st.sampled_from(OFFSETS), oy=st.sampled_from(OFFSETS),
    sx=st.sampled_from(SCALES), sw=st.sampled_from(SCALES), sy=st.sampled_from(SCALES), sz=st.sampled_from(SCALES),
    slope=st.booleans(),
    budget=st.integers(1, 2),
)
def test_offsets_and_scales_change_nothing(seed, K, n_per, ox, ow, oy, sx, sw, sy, sz, slope, budget):
    # an offset 1e16 times the spread leaves no digit of the column (the same in every program)
    assume(ox <= 1e8 * sx and ow <= 1e8 * sw and oy <= 1e8 * sy)
    df = _data(K, n_per, seed)
    seen, truth = _transformed(df, {"x": ox, "w": ow, "y": oy}, {"x": sx, "w": sw, "y": sy, "z": sz})
    formula = "y ~ x + w + (1 + z | g)" if slope else "y ~ x + w + (1 | g)"
    d_seen, d_true = build_design(formula, seen), build_design(formula, truth)
    mu_seen, mu_true = default_mu(d_seen, 0.5), default_mu(d_true, 0.5)
    # the ridge weights are relative to z'z, so they carry z's scale and nothing else
    np.testing.assert_allclose(mu_seen, mu_true * np.tile([1.0, sz**2] if slope else [1.0], K), rtol=1e-10)
    problem = SelectionProblem.build(d_seen, budget, mu_seen)
    # every support: objective and estimates against the dense solve of the undone problem
    rng = np.random.default_rng(seed)
    for _ in range(4):
        units = rng.choice(problem.n_units, size=budget, replace=False)
        s = np.zeros(problem.n_units)
        s[units] = 1
        cols = np.flatnonzero(np.isin(problem.unit_of_col, units))
        value, beta, gamma = dense_ridge(d_true, mu_true, cols)
        ev = problem.stats.evaluate(problem.columns(s))
        assert ev.value == pytest.approx(value * sy**2, rel=1e-8)
        b_x, b_w = beta[1] * sy / sx, beta[2] * sy / sw
        assert ev.beta[1] == pytest.approx(b_x, rel=1e-8, abs=1e-8 * abs(b_x) + 1e-12 * sy / sx)
        assert ev.beta[2] == pytest.approx(b_w, rel=1e-8, abs=1e-8 * abs(b_w) + 1e-12 * sy / sw)
        intercept = beta[0] * sy + oy - ox * b_x - ow * b_w
        scale = sy + abs(oy) + abs(ox * b_x) + abs(ow * b_w)
        assert ev.beta[0] == pytest.approx(intercept, abs=1e-8 * scale)
        g_scale = np.tile([sy, sy / sz] if slope else [sy], K)[cols]
        np.testing.assert_allclose(ev.gamma[cols], gamma * g_scale, rtol=1e-7, atol=1e-9 * np.abs(gamma * g_scale).max())
    # the certified optimum is the brute-force optimum of the undone problem
    fit = hm.fit(formula, seen, budget, ridge=0.5, gap=0.0, enumerate_below=0)
    best, _ = brute_force(SelectionProblem.build(d_true, budget, mu_true), d_true, mu_true)
    assert fit.certificate.status in ("optimal", "closed_form")
    assert fit.certificate.primal == pytest.approx(best * sy**2, rel=1e-8)


def test_large_offset_covariate_keeps_its_coefficient():
    """The issue's case: x + 1e8 (a timestamp) was dropped by R's raw-norm rank test, and fitted
    with coefficient -0.16 (truth 1.01) by raw normal equations."""
    df = _data(8, 12, 0)
    ref = hm.fit("y ~ x + (1 | g)", df, 2)
    for offset in (1e4, 1e8, 1e10):
        with warnings.catch_warnings():
            warnings.simplefilter("error", hm.HierMIOWarning)  # nothing is dropped
            res = hm.fit("y ~ x + (1 | g)", df.assign(x=df.x + offset), 2)
        assert res.fixef()["x"] == pytest.approx(ref.fixef()["x"], rel=1e-6)  # x itself is rounded at 1e10
        assert res.certificate.primal == pytest.approx(ref.certificate.primal, rel=1e-6)
        assert res.selected == ref.selected


def test_nearly_collinear_pair_is_named_and_a_moderate_one_is_exact():
    df = _data(8, 12, 1)
    rng = np.random.default_rng(5)
    with pytest.warns(hm.HierMIOWarning, match="dropping 1 column.*'x2'"):
        res = hm.fit("y ~ x + x2 + (1 | g)", df.assign(x2=df.x + 1e-9 * rng.normal(size=len(df))), 2)
    assert "x2" not in res.fixef().index
    assert any("x2" in w for w in res.warnings)
    # 1e-5 apart: kept, and its objective is that of a dense solve (normal equations lose ~1e-6 here)
    near = df.assign(x2=df.x + 1e-5 * rng.normal(size=len(df)))
    res = hm.fit("y ~ x + x2 + (1 | g)", near, 2, gap=0.0, refit=False)
    d = res.design
    cols = np.flatnonzero(res.support)
    value, beta, _ = dense_ridge(d, res.mu, cols)
    assert res.certificate.primal == pytest.approx(value, rel=1e-9)
    np.testing.assert_allclose(res.beta, beta, rtol=1e-6)


def test_response_scale_does_not_change_the_support():
    """An absolute threshold once made y x 1e-151 select nothing."""
    df = _data(8, 10, 3)
    ref = hm.fit("y ~ x + (1 | g)", df, 3)
    for k in (3e-152, 1e-40, 1e40, 1e149):
        res = hm.fit("y ~ x + (1 | g)", df.assign(y=df.y * k), 3)
        assert res.selected == ref.selected
        assert res.certificate.primal == pytest.approx(ref.certificate.primal * k * k, rel=1e-9)
        assert res.fixef()["x"] == pytest.approx(ref.fixef()["x"] * k, rel=1e-9)


def test_exact_fit_selects_nothing_and_says_so():
    df = _data(6, 8, 4)
    with pytest.warns(hm.HierMIOWarning, match="fits the response exactly"):
        res = hm.fit("y ~ x + (1 | g)", df.assign(y=2 * df.x + 1), 2)
    assert res.certificate.status == "closed_form"
    assert res.n_nonzero == 0
    assert 0 <= res.certificate.primal < 1e-20
    assert res.fixef().to_numpy() == pytest.approx([1.0, 2.0], rel=1e-12)


def test_enumeration_and_branch_and_cut_agree_with_brute_force():
    df = _data(7, 6, 8)
    design = build_design("y ~ x + (1 + z | g)", df)
    mu = default_mu(design, 0.3)
    best, _ = brute_force(SelectionProblem.build(design, 3, mu), design, mu)
    enum = hm.fit("y ~ x + (1 + z | g)", df, 3, ridge=0.3, gap=0.0)
    search = hm.fit("y ~ x + (1 + z | g)", df, 3, ridge=0.3, gap=0.0, enumerate_below=0, search="outer_approximation")
    fixed = hm.fit("y ~ x + (1 + z | g)", df, 3, ridge=0.3, gap=0.0, enumerate_below=0)
    assert enum.certificate.solver.startswith("enumeration")
    assert search.certificate.solver.startswith("SCIP")
    assert fixed.certificate.solver == "branch-and-bound on the fixed effects"
    for f in (enum, search, fixed):
        assert f.certificate.primal == pytest.approx(best, rel=1e-9)


def test_tiny_time_limit_bound_is_never_below_the_full_support():
    """A bound of -1.5e24 was once reported; c(every unit) <= c(s) is always valid."""
    from reference import simulate

    df = simulate(K=150, n_per=4, n_nonzero=40, effect=0.35, seed=2)
    res = hm.fit("y ~ x + (1 | g)", df, budget=40, ridge=0.05, time_limit=0.05, gap=0.0, enumerate_below=0)
    full = res.problem.value(np.ones(res.problem.n_units))
    assert full - 1e-9 * abs(full) <= res.certificate.dual <= res.certificate.primal


@pytest.mark.parametrize("levels", [(30, 12), (900, 150)])  # Z'Z kept dense (<= 1000 columns) and sparse
def test_crossed_evaluation_equals_the_dense_ridge_solve(levels):
    rng = np.random.default_rng(3)
    n = 6000
    df = pd.DataFrame({"g": rng.integers(0, levels[0], n), "h": rng.integers(0, levels[1], n), "x": rng.normal(size=n)})
    df["y"] = df.x + rng.normal(size=n) + (df.g % 5 == 0) - 0.5 * (df.h % 3 == 0)
    d = build_design("y ~ x + (1 | g) + (1 | h)", df)
    mu = default_mu(d, 0.3)
    problem = SelectionProblem.build(d, budget=4, mu=mu)
    assert (problem.stats._G_dense is not None) == (d.n_columns <= 1000)
    for size in (1, 25, d.n_columns):
        cols = np.sort(rng.choice(d.n_columns, size, replace=False))
        s = np.zeros(d.n_columns)
        s[cols] = 1.0
        ev = problem.stats.evaluate(s)
        value, beta, gamma = dense_ridge(d, mu, cols)
        assert abs(ev.value - value) <= 1e-9 * value
        np.testing.assert_allclose(ev.beta, beta, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(ev.gamma[cols], gamma, rtol=1e-7, atol=1e-9)
