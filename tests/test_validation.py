import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from reference import simulate
from hiermio.paper.simulate import simulate_atypical


def test_within_folds_split_every_cluster_evenly():
    labels = pd.Series(np.repeat(np.arange(6), 10))
    fold = hm.within_cluster_folds(labels, 5, random_state=1)
    counts = pd.crosstab(labels, fold)
    assert (counts == 2).all().all()


def test_cv_table_matches_hand_computed_fold_errors():
    df = simulate(K=6, n_per=10, n_nonzero=2, effect=2.0, seed=5)
    res = hm.cv("y ~ x + (1 | g)", df, budgets=[0, 2], folds=2, random_state=4)
    fold = hm.within_cluster_folds(df.g, 2, random_state=4)
    for f in range(2):
        train, valid = df[fold != f], df[fold == f]
        for b in (0, 2):
            fit = hm.fit("y ~ x + (1 | g)", train, b)
            mse = np.mean((valid.y - fit.predict(valid)) ** 2)
            assert res.table.loc[b, f"fold_{f}"] == pytest.approx(mse, rel=1e-9)
    assert res.best_budget_ == res.table.mean_mse.idxmin()
    np.testing.assert_allclose(res.best_fit_.fixef(), hm.fit("y ~ x + (1 | g)", df, res.best_budget_).fixef())


def test_cv_picks_the_true_sparsity_on_strong_signal():
    df = simulate(K=8, n_per=20, n_nonzero=2, effect=3.0, seed=2)
    res = hm.cv("y ~ x + (1 | g)", df, budgets=range(0, 6), folds=4, rule="1se", random_state=0)
    assert res.best_budget_ == 2


def test_cluster_scheme_caps_budget_at_training_levels():
    df = simulate(K=6, n_per=8, seed=1)
    res = hm.cv("y ~ x + (1 | g)", df, budgets=[6], scheme="cluster", folds=3)
    assert res.best_budget_ == 6 and np.isfinite(res.table.mean_mse.iloc[0])


def test_cv_errors_are_named():
    df = simulate()
    with pytest.raises(hm.HierMIOError, match="rule must be"):
        hm.cv("y ~ x + (1 | g)", df, budgets=[1], rule="best")
    with pytest.raises(hm.HierMIOError, match="has none"):
        hm.cv("y ~ x", df, budgets=[1])
    with pytest.raises(hm.HierMIOError, match="scheme must be"):
        hm.cv("y ~ x + (1 | g)", df, budgets=[1], scheme="rows")


def test_cluster_scheme_scores_held_out_clusters_with_the_chosen_rule():
    df = simulate(K=6, n_per=10, n_nonzero=2, effect=2.0, seed=3)
    soft = hm.cv("y ~ x + (1 | g)", df, budgets=[0, 2], scheme="cluster", folds=3, new_levels="soft")
    pop = hm.cv("y ~ x + (1 | g)", df, budgets=[0, 2], scheme="cluster", folds=3)
    # budget 0 has no effects to assign, so the two rules agree there and only there
    assert soft.table.loc[0, "mean_mse"] == pytest.approx(pop.table.loc[0, "mean_mse"])
    assert soft.table.loc[2, "mean_mse"] != pytest.approx(pop.table.loc[2, "mean_mse"])
    assert soft.best_fit_.n_nonzero <= soft.best_budget_


def test_cluster_blocked_cv_finds_the_true_budget_in_most_seeds(capsys):
    # held-out clusters can only reward the right budget when their effects are predictable:
    # here a cluster-level feature w (not in the formula) tells the atypical clusters apart
    truth, chosen = 3, []
    for seed in range(20):
        df, gamma = simulate_atypical(K=12, n_per=20, n_atypical=truth, seed=seed)
        res = hm.cv("y ~ x1 + x2 + (1 | g)", df, budgets=range(0, 9), scheme="cluster", folds=4, rule="1se",
                    random_state=seed, new_levels="features", cluster_features=["w"], progress=False)
        chosen.append(res.best_budget_)
    hits = int(np.sum(np.abs(np.array(chosen) - truth) <= 2))
    with capsys.disabled():
        print(f"\n[tally] cluster-blocked CV, 20 seeds, truth {truth}: chosen {chosen}; within +-2: {hits}/20")
    assert hits >= 14


def test_cv_on_nested_and_crossed_terms_stays_within_each_terms_size():
    """Pastes: batch has 10 levels, cask:batch 30. The auto grid goes to 30, and the chosen budget is
    capped per term (a budget of 20 once crashed the final fit of (1 | batch))."""
    import warnings

    pastes = hm.load_dataset("Pastes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hm.HierMIOWarning)
        res = hm.cv("strength ~ 1 + (1 | batch/cask)", pastes, folds=3, random_state=0)
    assert list(res.table.index) == list(range(31))
    sizes = {t.term.label: t.n_columns for t in res.best_fit_.design.terms}
    assert res.best_fit_.budgets == {k: min(res.best_budget_, n) for k, n in sizes.items()}
    pen = hm.load_dataset("Penicillin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hm.HierMIOWarning)
        res = hm.cv("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, budgets=[0, 2, 6, 24], folds=3)
    assert all(v <= n for v, n in zip(res.best_fit_.budgets.values(), (24, 6)))


def test_cv_warns_when_the_choice_sits_at_the_edge_of_the_grid():
    df = simulate(K=12, n_per=10, n_nonzero=6, effect=2.0, seed=1)
    with pytest.warns(hm.HierMIOWarning, match="cv chose budget 2, the largest one tried"):
        res = hm.cv("y ~ x + (1 | g)", df, budgets=[0, 1, 2], folds=3)
    assert res.best_budget_ == 2


def test_cv_tunes_the_ridge_beside_the_budget_from_hand_computed_fold_errors():
    df = simulate(K=6, n_per=10, n_nonzero=2, effect=2.0, seed=6)
    res = hm.cv("y ~ x + (1 | g)", df, budgets=[0, 1, 2], ridges=[0.05, 3.0], folds=2, random_state=2)
    fold = hm.within_cluster_folds(df.g, 2, random_state=2)
    for f in range(2):
        train, valid = df[fold != f], df[fold == f]
        for ridge in (0.05, 3.0):
            for b in (0, 1, 2):
                fit = hm.fit("y ~ x + (1 | g)", train, b, ridge=ridge)
                mse = np.mean((valid.y - fit.predict(valid)) ** 2)
                assert res.table.loc[(ridge, b), f"fold_{f}"] == pytest.approx(mse, rel=1e-9)
    assert (res.best_ridge_, res.best_budget_) == res.table.mean_mse.idxmin()
    assert res.best_fit_.control.ridge == res.best_ridge_
    with pytest.raises(hm.HierMIOError, match="either ridge .* or ridges"):
        hm.cv("y ~ x + (1 | g)", df, ridges=[0.1], ridge=0.2)
    with pytest.raises(hm.HierMIOError, match="ridge=1e-09 is below"):
        hm.cv("y ~ x + (1 | g)", df, ridges=[0.1, 1e-9])
