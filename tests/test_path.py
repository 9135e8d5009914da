import numpy as np
import pytest

import hiermio as hm
from reference import simulate


def test_path_matches_independent_fits_and_caps_budgets():
    df = simulate(K=7, n_per=12, n_nonzero=3, effect=1.5, seed=8)
    p = hm.path("y ~ x + (1 | g)", df, budgets=[0, 1, 3, 9], gap=0.0)
    assert p.table.index.tolist() == [0, 1, 3, 9]
    for b in (0, 1, 3):
        alone = hm.fit("y ~ x + (1 | g)", df, b, gap=0.0)
        assert p.table.loc[b, "objective"] == pytest.approx(alone.certificate.primal, rel=1e-9)
        assert p.fits[b].n_nonzero <= b
    # a budget above the number of levels is capped: every level may differ
    assert p.fits[9].problem.budgets.tolist() == [7]
    assert p.table.loc[9, "status"] == "closed_form"
    assert (np.diff(p.table.objective.to_numpy()) <= 1e-9).all()


def test_path_validation_error_is_the_fits_test_error():
    df = simulate(K=6, n_per=16, seed=3)
    train, valid = df.iloc[::2], df.iloc[1::2]
    p = hm.path("y ~ x + (1 | g)", train, budgets=[0, 2], validation=valid)
    for b in (0, 2):
        mse = np.mean((valid.y - p.fits[b].predict(valid)) ** 2)
        assert p.table.loc[b, "validation_mse"] == pytest.approx(mse)
    fig = p.plot()
    assert len(fig.axes) == 3 and fig.axes[0].get_title().endswith(": certified")


def test_path_names_the_levels_entering_at_each_budget():
    df = simulate(K=8, n_per=10, n_nonzero=3, effect=1.5, seed=2)
    p = hm.path("y ~ x + (1 | g)", df, budgets=[0, 1, 2, 3], certify=False)
    before = set()
    for b, row in p.entering().iterrows():
        now = {str(v) for v in p.fits[b].selected["(1 | g)"]}
        assert set(row.entered) == now - before and set(row.left) == before - now
        before = now
    fig = p.plot()
    assert fig.axes[0].get_title().endswith("screened, not certified")
    assert {t.get_text().lstrip("+").split("  ")[0] for t in fig.axes[-1].texts} == \
        {", ".join(r.entered) for _, r in p.entering().iterrows() if r.entered}


def test_screening_path_bounds_bracket_the_brute_force_optimum():
    from reference import brute_force

    df = simulate(K=8, n_per=10, n_nonzero=3, effect=1.0, seed=12)
    quick = hm.path("y ~ x + (1 | g)", df, budgets=range(0, 9), certify=False)
    exact = hm.path("y ~ x + (1 | g)", df, budgets=range(0, 9), gap=0.0)
    assert set(quick.table.status) <= {"relaxation_bound", "gap_limit", "closed_form"}
    assert all(f.certificate.nodes == 0 for f in quick.fits.values())  # no branch-and-bound ran
    for b in range(1, 8):
        fit = quick.fits[b]
        best, _ = brute_force(fit.problem, fit.design, fit.mu)
        c = fit.certificate
        assert c.dual <= best * (1 + 1e-9) and c.primal >= best * (1 - 1e-9)
        assert c.primal >= exact.table.loc[b, "objective"] * (1 - 1e-9)
        assert c.gap == pytest.approx((c.primal - c.dual) / c.primal)
