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
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ..core.exceptions import DataError, HierMIOError

__all__ = ["RULES", "NewLevelRule", "TermTraining", "register_rule", "check_rule", "default_depth",
           "fit_assignment_tree", "soft_effects", "hard_effects", "cluster_means", "fit_feature_tree",
           "feature_frame", "check_cluster_features"]


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


# ---------------------------------------------------------------------------------- the registry
@dataclass
class TermTraining:
    """What a rule may learn from, for one random term: the training rows' fixed-part matrix and
    data, their level codes, the fitted effects (K, q), and a cache shared by the fit's predictions."""

    X: np.ndarray
    fixed_names: Sequence[str]
    data: pd.DataFrame
    codes: np.ndarray
    effects: np.ndarray
    group: str
    depth: int | None = None
    cache: dict = field(default_factory=dict)

    def assignment_tree(self) -> DecisionTreeClassifier:
        key = ("assignment", self.group, self.depth)
        if key not in self.cache:
            self.cache[key] = fit_assignment_tree(self.X, self.codes, len(self.effects), self.depth)
        return self.cache[key]


class NewLevelRule(ABC):
    """How rows of a level never seen in training get cluster effects."""

    name: str

    @abstractmethod
    def effects(self, train: TermTraining, X_new: np.ndarray, newdata: pd.DataFrame, labels: np.ndarray,
                cluster_features: Sequence[str] | None) -> np.ndarray:
        """(rows, q) effects for the new rows (``labels`` are their levels)."""


RULES: dict[str, NewLevelRule] = {}


def register_rule(rule: NewLevelRule) -> NewLevelRule:
    """Make ``rule`` available as ``predict(..., new_levels=rule.name)``."""
    RULES[rule.name] = rule
    return rule


def check_rule(name: object) -> str:
    """``name`` if a rule is registered under it, else an error listing the rules."""
    if not isinstance(name, str) or name not in RULES:
        raise HierMIOError(f"new_levels must be one of {list(RULES)}, got {name!r}")
    return name


def check_cluster_features(columns: object) -> tuple[str, ...] | None:
    """``cluster_features`` as a tuple of column names: one name (a str) is one column, not its letters.

    >>> check_cluster_features("weight"), check_cluster_features(["w", "v"])
    (('weight',), ('w', 'v'))
    >>> check_cluster_features(3)
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.HierMIOError: cluster_features must be a column name or a list of column names, got 3
    """
    if columns is None:
        return None
    if isinstance(columns, str):
        return (columns,)
    if isinstance(columns, (bytes, pd.DataFrame)) or not hasattr(columns, "__iter__"):
        raise HierMIOError(f"cluster_features must be a column name or a list of column names, got {columns!r}")
    out = tuple(columns)
    if not out or not all(isinstance(c, str) for c in out):
        raise HierMIOError(f"cluster_features must be a column name or a list of column names, got {columns!r}")
    return out


def feature_frame(data: pd.DataFrame, X: np.ndarray, fixed_names: Sequence[str],
                  columns: Sequence[str] | str | None) -> pd.DataFrame:
    """Row-level features for the "features" rule: the fixed-part covariates (intercept left out),
    or the numeric, complete columns named in ``columns`` (see :func:`check_cluster_features`)."""
    columns = check_cluster_features(columns)
    if columns is None:
        keep = [i for i, n in enumerate(fixed_names) if n != "(Intercept)"]
        return pd.DataFrame(X[:, keep], columns=[fixed_names[i] for i in keep], index=data.index)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise DataError(f"cluster_features names column(s) {missing} that the data does not have")
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(data[c])]
    if bad:
        raise DataError(f"cluster_features column(s) {bad} must be numeric")
    frame = data[list(columns)].astype(float)
    holes = [c for c in columns if frame[c].isna().any()]
    if holes:
        raise DataError(f"cluster_features column(s) {holes} have missing values; the 'features' rule needs "
                        "every cluster's features")
    return frame


class _Population(NewLevelRule):
    name = "population"

    def effects(self, train, X_new, newdata, labels, cluster_features):
        return np.zeros((len(X_new), train.effects.shape[1]))


class _Soft(NewLevelRule):
    name = "soft"

    def effects(self, train, X_new, newdata, labels, cluster_features):
        return soft_effects(train.assignment_tree(), X_new, train.effects)


class _Hard(NewLevelRule):
    name = "hard"

    def effects(self, train, X_new, newdata, labels, cluster_features):
        return hard_effects(train.assignment_tree(), X_new, train.effects)


class _Features(NewLevelRule):
    name = "features"

    def effects(self, train, X_new, newdata, labels, cluster_features):
        cluster_features = check_cluster_features(cluster_features)
        frame = feature_frame(newdata, X_new, train.fixed_names, cluster_features)
        key = ("features", train.group, cluster_features, train.depth)
        if key not in train.cache:
            feats = cluster_means(feature_frame(train.data, train.X, train.fixed_names, cluster_features),
                                  train.codes).sort_index()
            if feats.shape[1] == 0:
                raise HierMIOError("the 'features' rule needs covariates: the fixed part has none; name cluster_features")
            train.cache[key] = fit_feature_tree(feats.to_numpy(), train.effects[feats.index], train.depth)
        # each new cluster's features from its rows, its prediction given back to those rows by position
        cluster_of_row, _ = pd.factorize(np.asarray(labels), use_na_sentinel=False)
        feats = cluster_means(frame, cluster_of_row).sort_index()
        return train.cache[key].predict(feats.to_numpy()).reshape(len(feats), -1)[cluster_of_row]


for _rule in (_Population(), _Soft(), _Hard(), _Features()):
    register_rule(_rule)
