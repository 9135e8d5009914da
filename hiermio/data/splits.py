"""Row splits that respect clusters: every cluster's rows, shuffled. One helper for cross-validation
folds, stability half-samples, train/test splits and the simulation study's splits.

>>> import numpy as np
>>> [sorted(p.tolist()) for p in shuffled_clusters(np.array(["b", "a", "b", "a"]), np.random.default_rng(0))]
[[1, 3], [0, 2]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.control import check_integer

__all__ = ["shuffled_clusters", "within_cluster_folds", "check_random_state"]

_MAX_RANDOM_STATE = 2**32 - 1  # numpy's and scikit-learn's range for a seed


def check_random_state(value, name: str = "random_state") -> int:
    """The seed of a loop's random splits: a whole number in 0..2**32-1, or ``None`` for a fresh one
    (drawn once here, so that every fold, half-sample or partition of one call shares it).

    >>> check_random_state(7)
    7
    >>> check_random_state(-1)
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.HierMIOError: random_state must be in 0..4294967295, got -1
    """
    if value is None:
        return int(np.random.default_rng().integers(_MAX_RANDOM_STATE, endpoint=True))
    return check_integer(value, name, 0, _MAX_RANDOM_STATE)


def shuffled_clusters(labels, rng: np.random.Generator) -> list[np.ndarray]:
    """The row positions of each cluster (clusters in sorted order), each shuffled by ``rng``."""
    groups = pd.Series(np.arange(len(labels))).groupby(np.asarray(labels))
    return [rng.permutation(pos.to_numpy()) for _, pos in groups]


def within_cluster_folds(labels: pd.Series, folds: int, random_state: int = 0) -> np.ndarray:
    """Fold number of every row: each cluster's rows are shuffled and dealt round-robin.

    >>> within_cluster_folds(pd.Series(list("aaabbb")), 3, 0).tolist().count(0)
    2
    """
    rng = np.random.default_rng(random_state)
    fold = np.empty(len(labels), dtype=int)
    offset = 0
    for idx in shuffled_clusters(labels, rng):
        fold[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)  # so that small clusters do not all land in fold 0
    return fold
