"""Cluster effects for clusters never seen in training (the paper's section 2.2.2).

* ``"soft"``: a CART classifier from the fixed-part covariates to the training clusters gives each
  new row class probabilities pi; its effect is pi' Gamma (the paper's default).
* ``"hard"``: the effect of the most probable training cluster.
* ``"features"``: a regression tree from cluster-level features (cluster means of the covariates,
  or columns the user names) to the fitted effects; a new cluster's features are computed from its
  rows in the new data.
* ``"population"``: no cluster effect (what lme4 does).

Trees default to depth ceil(log2 K), as in the paper, and are scikit-learn objects users can print
with ``sklearn.tree.export_text``.

>>> import numpy as np
>>> X = np.array([[0.], [0.1], [5.], [5.1]]); codes = np.array([0, 0, 1, 1])
>>> tree = fit_assignment_tree(X, codes, n_levels=2)
>>> soft_effects(tree, np.array([[0.05]]), np.array([[1.0], [-1.0]])).tolist()
[[1.0]]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

__all__ = ["RULES", "default_depth", "fit_assignment_tree", "soft_effects", "hard_effects",
           "cluster_means", "fit_feature_tree"]

RULES = ("population", "soft", "hard", "features")


def default_depth(n_levels: int) -> int:
    """ceil(log2 K): enough leaves to tell K clusters apart, no more (the paper's choice)."""
    return max(1, math.ceil(math.log2(max(n_levels, 2))))


def fit_assignment_tree(X: np.ndarray, codes: np.ndarray, n_levels: int, max_depth: int | None = None,
                        random_state: int = 0) -> DecisionTreeClassifier:
    """CART classifier from covariates to training-cluster codes."""
    depth = max_depth if max_depth is not None else default_depth(n_levels)
    return DecisionTreeClassifier(max_depth=depth, random_state=random_state).fit(X, codes)


def soft_effects(tree: DecisionTreeClassifier, X_new: np.ndarray, effects: np.ndarray) -> np.ndarray:
    """pi' Gamma for each new row: (rows, q)."""
    return tree.predict_proba(X_new) @ effects[tree.classes_]


def hard_effects(tree: DecisionTreeClassifier, X_new: np.ndarray, effects: np.ndarray) -> np.ndarray:
    """The effects of the most probable training cluster: (rows, q)."""
    return effects[tree.predict(X_new)]


def cluster_means(values: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Cluster-level features: the mean of every column within each cluster."""
    return values.groupby(np.asarray(labels), sort=False).mean()


def fit_feature_tree(features: np.ndarray, effects: np.ndarray, max_depth: int | None = None,
                     random_state: int = 0) -> DecisionTreeRegressor:
    """Regression tree from cluster-level features (K, f) to cluster effects (K, q)."""
    depth = max_depth if max_depth is not None else default_depth(len(features))
    return DecisionTreeRegressor(max_depth=depth, random_state=random_state).fit(features, effects)
