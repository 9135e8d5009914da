import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from hiermio.paper.simulate import (SCALES, beta_error, gamma_error, scenarios, simulate_clustered, sparsity_recovery,
                              true_icc)


@pytest.mark.parametrize("scale", list(SCALES))
def test_sparse_scenarios_have_the_stated_share_of_zero_effects(scale):
    K, p = SCALES[scale]
    for share in (0.9, 0.5, 0.0):
        sim = simulate_clustered(scale, "sparse", share, seed=3)
        assert (sim.gamma != 0).sum() == round((1 - share) * K)
        assert set(np.abs(sim.gamma[sim.gamma != 0])) <= {1.0}
        assert sim.data.shape == (50 * K, p + 3)


def test_splits_are_within_each_cluster():
    sim = simulate_clustered("medium", "gaussian", 10.0, seed=2)
    counts = pd.crosstab(sim.data.g, sim.data.split)
    assert (counts["train"] == 30).all() and (counts["validation"] == 10).all() and (counts["test"] == 10).all()


def test_covariates_carry_the_cluster_effect():
    sim = simulate_clustered("high", "gaussian", 50.0, seed=4)
    means = sim.data.groupby("g")[[f"x{j + 1}" for j in range(35)]].mean().to_numpy()
    # cluster means of the covariates are gamma_k times one loading vector: rank one up to noise
    s = np.linalg.svd(means, compute_uv=False)
    assert s[0] > 5 * s[1]


def test_metrics_are_zero_or_one_at_the_truth():
    sim = simulate_clustered("low", "sparse", 0.5, seed=0)
    names = [f"x{j + 1}" for j in range(10)]
    assert beta_error(sim, pd.Series(sim.beta, index=names)) == 0
    truth = pd.Series(sim.gamma, index=range(4))
    assert gamma_error(sim, truth) == 0 and sparsity_recovery(sim, truth) == 1.0
    assert gamma_error(sim, truth - 1.0, intercept=1.0) == pytest.approx(0.0)
    assert sparsity_recovery(sim, pd.Series(np.ones(4), index=range(4))) == 0.0
    assert true_icc(sim) == pytest.approx(0.5 / 1.5)
    assert len(scenarios()) == 66


def test_direction_of_the_papers_claims_on_sparse_high_scenarios():
    mio_err, ols_err, recovery = [], [], []
    for seed in range(3):
        sim = simulate_clustered("high", "sparse", 0.75, seed=seed)
        train = sim.data[sim.data.split != "test"]
        fit = hm.fit(sim.formula, train, int((sim.gamma != 0).sum()))
        ols = hm.fit(sim.formula.replace(" + (1 | g)", ""), train, 0)
        mio_err.append(beta_error(sim, fit.fixef()))
        ols_err.append(beta_error(sim, ols.fixef()))
        recovery.append(sparsity_recovery(sim, fit.ranef()["g"]["(Intercept)"]))
    assert np.mean(mio_err) < np.mean(ols_err)
    assert np.mean(recovery) >= 0.7


def test_bad_scenarios_are_named():
    with pytest.raises(hm.HierMIOError, match="scale must be one of"):
        simulate_clustered("huge", "sparse", 0.5)
    with pytest.raises(hm.HierMIOError, match="share of zero effects"):
        simulate_clustered("low", "sparse", 1.5)
    with pytest.raises(hm.HierMIOError, match="split must be"):
        simulate_clustered("low", "gaussian", 10.0, split=(0.5, 0.5, 0.5))
