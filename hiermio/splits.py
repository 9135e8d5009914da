"""Row splits that respect clusters: every cluster's rows, shuffled. One helper for cross-validation
folds, stability half-samples, train/test splits and the simulation study's splits.

>>> import numpy as np
>>> [sorted(p.tolist()) for p in shuffled_clusters(np.array(["b", "a", "b", "a"]), np.random.default_rng(0))]
[[1, 3], [0, 2]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["shuffled_clusters"]


def shuffled_clusters(labels, rng: np.random.Generator) -> list[np.ndarray]:
    """The row positions of each cluster (clusters in sorted order), each shuffled by ``rng``."""
    groups = pd.Series(np.arange(len(labels))).groupby(np.asarray(labels))
    return [rng.permutation(pos.to_numpy()) for _, pos in groups]
