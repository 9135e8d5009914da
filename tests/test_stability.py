import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from reference import simulate


def test_watchlist_holds_the_true_atypical_clusters():
    rng = np.random.default_rng(0)
    K, n_per = 12, 20
    g = np.repeat(np.arange(K), n_per)
    effect = np.zeros(K)
    effect[[2, 7, 9]] = [2.5, -2.5, 2.5]
    df = pd.DataFrame({"g": g, "x": rng.normal(size=K * n_per)})
    df["y"] = 1 + df.x + effect[g] + rng.normal(size=K * n_per)
    st = hm.stability("y ~ x + (1 | g)", df, budget=3, B=10, random_state=1)
    wl = st.watchlist(threshold=0.8)
    assert set(wl.level) == {2, 7, 9}
    q = st.mean_selected["(1 | g)"]
    assert wl.attrs["expected_false"]["(1 | g)"] == pytest.approx(q**2 / ((2 * 0.8 - 1) * K))
    assert ((st.frequencies >= 0) & (st.frequencies <= 1)).all().all()


def test_frequencies_count_the_half_sample_fits():
    df = simulate(K=6, n_per=10, seed=2)
    st = hm.stability("y ~ x + (1 | g)", df, budget=2, B=4, random_state=5)
    # recompute by hand with the same halves
    rng = np.random.default_rng(5)
    positions = pd.Series(np.arange(len(df))).groupby(df.g.to_numpy())
    counts = pd.Series(0.0, index=range(6))
    for _ in range(2):
        first = np.zeros(len(df), dtype=bool)
        for _, pos in positions:
            idx = rng.permutation(pos.to_numpy())
            first[idx[: len(idx) // 2]] = True
        for h in (first, ~first):
            for level in hm.fit("y ~ x + (1 | g)", df.iloc[np.flatnonzero(h)], 2).selected["(1 | g)"]:
                counts[level] += 1
    np.testing.assert_allclose(st.frequencies["(1 | g)"].to_numpy(), (counts / 4).to_numpy())
    again = hm.stability("y ~ x + (1 | g)", df, budget=2, B=4, random_state=5)
    pd.testing.assert_frame_equal(st.frequencies, again.frequencies)


def test_bad_arguments_are_named():
    df = simulate()
    with pytest.raises(hm.HierMIOError, match="B must be an even number"):
        hm.stability("y ~ x + (1 | g)", df, budget=1, B=3)
    with pytest.raises(hm.HierMIOError, match=r"threshold must be a finite number in \(0.5, 1\]"):
        hm.mb_bound(2, 10, 0.4)
