"""Reports on a fitted model's cluster effects: the audit curve, and the entry point of the cluster
bootstrap (:func:`hiermio.fitting.bootstrap.bootstrap`, which the results object uses too).

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
>>> curve = audit_curve(fit)
>>> round(float(curve.share.iloc[-1]), 12)
1.0
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.exceptions import HierMIOError
from ..fitting.bootstrap import bootstrap
from ..fitting.results import MIOFit

__all__ = ["audit_curve", "bootstrap"]


def audit_curve(fit: MIOFit, group: str | None = None) -> pd.DataFrame:
    """Share of the total cluster deviation captured when flagging the k largest effects.

    Deviation of a level = the squared norm of its effects times its row count (its contribution to
    the fitted cluster part); levels are flagged in decreasing order. Columns: ``flagged`` (k),
    ``level``, ``deviation``, ``share`` (cumulative).
    """
    ranef = fit.ranef()
    group = group or next(iter(ranef))
    if group not in ranef:
        raise HierMIOError(f"unknown grouping factor {group!r}; the fit has {list(ranef)}")
    eff = ranef[group]
    term = next(t for t in fit.design.terms if t.term.group_name == group)  # rows per level, from the design's codes
    counts = pd.Series(term.level_sizes, index=term.levels).reindex(eff.index).fillna(0).to_numpy()
    dev = (eff.to_numpy() ** 2).sum(axis=1) * counts
    order = np.argsort(-dev, kind="stable")
    total = dev.sum()
    share = np.cumsum(dev[order]) / total if total > 0 else np.zeros(len(dev))
    return pd.DataFrame({"flagged": np.arange(1, len(dev) + 1), "level": eff.index[order],
                         "deviation": dev[order], "share": share})
