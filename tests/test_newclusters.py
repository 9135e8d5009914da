"""Predictions for clusters not seen in training, against hand computations."""

import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from reference import simulate


@pytest.fixture(scope="module")
def fit_and_new():
    # clusters differ in their covariate means, so a tree can tell them apart
    rng = np.random.default_rng(0)
    K, n_per = 6, 30
    g = np.repeat(np.arange(K), n_per)
    x = rng.normal(size=K * n_per) + np.array([-4, -2, 0, 2, 4, 6])[g]
    effect = np.array([2.0, 0, 0, -2.0, 0, 0])
    df = pd.DataFrame({"g": g, "x": x, "y": 1 + 0.5 * x + effect[g] + rng.normal(size=K * n_per) * 0.3})
    fit = hm.fit("y ~ x + (1 | g)", df, budget=2, gap=0.0)
    new = pd.DataFrame({"g": [100, 100, 101], "x": [-4.1, -3.9, 2.2]})
    return fit, new


def test_soft_is_probabilities_times_training_effects(fit_and_new):
    fit, new = fit_and_new
    tree = fit.assignment_tree_["g"]
    pi = tree.predict_proba(new[["x"]].assign(i=1.0)[["i", "x"]].to_numpy())
    gamma = fit.ranef()["g"]["(Intercept)"].to_numpy()[tree.classes_]
    pop = fit.predict(new, re_form="~0").to_numpy()
    np.testing.assert_allclose(fit.predict(new, new_levels="soft").to_numpy(), pop + pi @ gamma, rtol=1e-12)


def test_hard_takes_the_most_probable_cluster(fit_and_new):
    fit, new = fit_and_new
    tree = fit.assignment_tree_["g"]
    X = np.column_stack([np.ones(len(new)), new.x])
    gamma = fit.ranef()["g"]["(Intercept)"].to_numpy()
    expected = fit.predict(new, re_form="~0").to_numpy() + gamma[tree.predict(X)]
    np.testing.assert_allclose(fit.predict(new, new_levels="hard").to_numpy(), expected)
    # x near cluster 0's mean: the hard rule gives cluster 0's (nonzero) effect
    assert fit.ranef()["g"]["(Intercept)"].iloc[0] != 0
    assert tree.predict(X[:1])[0] == 0


def test_population_is_the_fixed_part(fit_and_new):
    fit, new = fit_and_new
    expected = fit.fixef()["(Intercept)"] + fit.fixef()["x"] * new.x.to_numpy()
    np.testing.assert_allclose(fit.predict(new, allow_new_levels=True).to_numpy(), expected)
    np.testing.assert_allclose(fit.predict(new, new_levels="population").to_numpy(), expected)
    # lme4's default: new levels are an error that names them
    with pytest.raises(hm.DataError, match=r"grouping factor 'g' has level\(s\) \['100'"):
        fit.predict(new)


def test_features_rule_recovers_a_copied_cluster():
    df = simulate(K=8, n_per=20, n_nonzero=3, effect=2.0, seed=4)
    df["w"] = df.g * 1.5  # a cluster-level feature that identifies each cluster
    fit = hm.fit("y ~ x + (1 | g)", df, budget=3, gap=0.0)
    fit.tree_depth = 10
    k = fit.selected["(1 | g)"][0]
    copy = df[df.g == k].assign(g=999)
    got = fit.predict(copy, new_levels="features", cluster_features=["w"]).to_numpy()
    expected = fit.predict(df[df.g == k]).to_numpy()
    np.testing.assert_allclose(got, expected)


def test_bad_rule_and_feature_columns_are_named(fit_and_new):
    fit, new = fit_and_new
    with pytest.raises(hm.HierMIOError, match="new_levels must be one of"):
        fit.predict(new, new_levels="nearest")
    with pytest.raises(hm.DataError, match=r"cluster_features names column\(s\) \['nope'\]"):
        fit.predict(new, new_levels="features", cluster_features=["nope"])


def test_compare_and_estimator_use_the_rule_for_new_clusters(fit_and_new):
    fit, new = fit_and_new
    train = fit.design.data
    test = new.assign(y=[3.0, 2.5, 1.0])
    cmp = hm.compare("y ~ x + (1 | g)", train, test=test, methods=["mio"], budget=2, gap=0.0, new_levels="soft")
    soft = fit.predict(new, new_levels="soft").to_numpy()
    assert cmp.table.loc["mio", "test_mse"] == pytest.approx(np.mean((test.y.to_numpy() - soft) ** 2))
    est = hm.HierMIO("y ~ x + (1 | g)", budget=2, gap=0.0, new_levels="hard").fit(train)
    np.testing.assert_allclose(est.predict(new), fit.predict(new, new_levels="hard").to_numpy())
