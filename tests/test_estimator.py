import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold

import hiermio as hm
from hiermio import NotFittedError


def test_params_round_trip_and_clone():
    est = hm.HierMIO("Reaction ~ Days + (1 | Subject)", budget=3, ridge=0.2)
    params = est.get_params()
    assert params["budget"] == 3 and params["ridge"] == 0.2
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    est.set_params(budget=5)
    assert est.budget == 5


def test_fit_with_and_without_y_agree():
    df = hm.load_dataset("sleepstudy")
    a = hm.HierMIO("Reaction ~ Days + (1 | Subject)", budget=3).fit(df)
    b = hm.HierMIO("Reaction ~ Days + (1 | Subject)", budget=3).fit(df.drop(columns="Reaction"), df.Reaction)
    np.testing.assert_allclose(a.coef_, b.coef_)
    np.testing.assert_allclose(a.predict(df), b.predict(df.drop(columns="Reaction")))
    direct = hm.fit("Reaction ~ Days + (1 | Subject)", df, budget=3)
    np.testing.assert_allclose(a.predict(df), direct.predict(df).to_numpy())
    assert 0 < a.score(df, df.Reaction) <= 1


def test_grid_search_with_group_kfold_picks_a_budget():
    df = hm.load_dataset("sleepstudy")
    grid = GridSearchCV(hm.HierMIO("Reaction ~ Days + (1 | Subject)"), {"budget": [0, 2, 6]},
                        cv=GroupKFold(3), scoring="neg_mean_squared_error")
    grid.fit(df, df.Reaction, groups=df.Subject)
    assert grid.best_params_["budget"] in (0, 2, 6)
    assert np.isfinite(grid.best_score_)


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        hm.HierMIO("y ~ x + (1 | g)", budget=1).predict(hm.load_dataset("sleepstudy"))


def test_grid_search_tunes_ridge_and_budget_as_cross_val_score_does():
    from sklearn.model_selection import cross_val_score

    df = hm.load_dataset("sleepstudy")
    est = hm.HierMIO("Reaction ~ Days + (1 | Subject)")
    params = {"budget": [2, 6], "ridge": [0.1, 3.0]}
    grid = GridSearchCV(est, params, cv=GroupKFold(3), scoring="neg_mean_squared_error")
    grid.fit(df, df.Reaction, groups=df.Subject)
    by_hand = {(b, r): cross_val_score(hm.HierMIO("Reaction ~ Days + (1 | Subject)", budget=b, ridge=r), df,
                                       df.Reaction, groups=df.Subject, cv=GroupKFold(3),
                                       scoring="neg_mean_squared_error").mean()
               for b in params["budget"] for r in params["ridge"]}
    best = max(by_hand, key=by_hand.get)
    assert (grid.best_params_["budget"], grid.best_params_["ridge"]) == best
    assert grid.best_estimator_.fit_.control.ridge == best[1]
