import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from reference import simulate


def test_audit_curve_orders_levels_by_captured_deviation():
    df = simulate(K=8, n_per=10, n_nonzero=3, effect=2.0, seed=6)
    fit = hm.fit("y ~ x + (1 | g)", df, budget=3, gap=0.0)
    curve = hm.audit_curve(fit)
    eff = fit.ranef()["g"]["(Intercept)"]
    dev = eff**2 * 10
    assert list(curve.level[:3]) == list(dev.sort_values(ascending=False).index[:3])
    np.testing.assert_allclose(curve.share.to_numpy(), np.cumsum(np.sort(dev.to_numpy())[::-1]) / dev.sum())
    assert curve.share.iloc[2] == pytest.approx(1.0)
    with pytest.raises(hm.HierMIOError, match="unknown grouping factor 'h'"):
        hm.audit_curve(fit, group="h")


def test_cluster_bootstrap_intervals_cover_the_estimate_and_are_reproducible():
    df = simulate(K=10, n_per=8, n_nonzero=2, seed=1)
    fit = hm.fit("y ~ x + (1 | g)", df, budget=2)
    a = hm.bootstrap(fit, B=20, random_state=3)
    b = hm.bootstrap(fit, B=20, random_state=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.index) == ["(Intercept)", "x"]
    assert (a["2.5%"] <= a["97.5%"]).all() and (a.se > 0).all()
    # x's true slope is 0.5; its interval from 20 resamples should hold the full-data estimate
    assert a.loc["x", "2.5%"] <= a.loc["x", "estimate"] <= a.loc["x", "97.5%"]
