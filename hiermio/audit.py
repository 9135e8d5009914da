"""Reports on a fitted model's cluster effects: the audit curve and the cluster bootstrap.

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
>>> curve = audit_curve(fit)
>>> round(float(curve.share.iloc[-1]), 12)
1.0
"""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
import pandas as pd
from joblib import delayed

from .api import fit as fit_model
from .control import FitControl, check_integer
from .design import group_labels
from .parallel import run_parallel
from .exceptions import HierMIOError, HierMIOWarning, Interrupted
from .results import MIOFit

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
    counts = group_labels(fit.design.data, group).value_counts().reindex(eff.index).fillna(0).to_numpy()
    dev = (eff.to_numpy() ** 2).sum(axis=1) * counts
    order = np.argsort(-dev, kind="stable")
    total = dev.sum()
    share = np.cumsum(dev[order]) / total if total > 0 else np.zeros(len(dev))
    return pd.DataFrame({"flagged": np.arange(1, len(dev) + 1), "level": eff.index[order],
                         "deviation": dev[order], "share": share})


def _refit_fixef(formula, data, budget, fit_options) -> np.ndarray:
    with warnings.catch_warnings():  # a resample's notes are screening detail
        warnings.simplefilter("ignore", HierMIOWarning)
        return fit_model(formula, data, budget, progress=False, **fit_options).beta


def bootstrap(fit: MIOFit, B: int = 200, level: float = 0.95, random_state: int = 0,
              n_jobs: int | None = None, progress: bool | None = None, certify: bool = False,
              **fit_options) -> pd.DataFrame:
    """Cluster bootstrap percentile intervals for the fixed effects.

    Whole clusters (of the first grouping factor) are resampled with replacement, each copy given
    a level of its own, and the model is refitted at the same budgets with the fit's options
    (``fit_options`` override them). The refits screen (``certify=False``: heuristic supports, as
    in :func:`hiermio.cv` and :func:`hiermio.stability`), which gives practically the same
    intervals in a fraction of the time; ``certify=True`` certifies every resample. Ctrl-C stops
    the resampling (:class:`hiermio.Interrupted`).
    """
    if isinstance(level, bool) or not isinstance(level, Real) or not 0 < level < 1:
        raise HierMIOError(f"level must lie strictly between 0 and 1, got {level!r}")
    B = check_integer(B, "B", 2)
    base = fit.control.as_dict() if fit.control is not None else {"ridge": fit.ridge}
    control = FitControl.from_options({**base, "selection": fit.budget.selection, **fit_options, "certify": certify},
                                      "bootstrap")
    d = fit.design
    if not d.terms:
        raise HierMIOError("the cluster bootstrap needs a random-effect term")
    d.require_rows("the cluster bootstrap (which resamples whole clusters of rows)")
    data = d.data
    group = d.terms[0].term.group
    if ":" in group or any(t.term.group != group for t in d.terms):
        raise HierMIOError("the cluster bootstrap supports one grouping factor given by one column")
    labels = group_labels(data, group)
    levels = labels.unique()
    rng = np.random.default_rng(random_state)
    samples = []
    for _ in range(B):
        pick = rng.choice(levels, len(levels), replace=True)
        parts = [data[labels == lv].assign(**{group: f"{lv}#{i}"}) for i, lv in enumerate(pick)]
        samples.append(pd.concat(parts, ignore_index=True))
    budget = {name: int(b) for name, b in fit.budgets.items()}
    opts = {**control.as_dict(), "weights": d.weights_column, "offset": d.offset_column}
    # each resampled copy is a level of its own, so every resample has as many levels as the data
    try:
        betas = np.array(run_parallel((delayed(_refit_fixef)(fit.formula, s, budget, opts) for s in samples),
                                      n_jobs, progress, desc="bootstrap fits"))
    except KeyboardInterrupt:
        raise Interrupted(f"bootstrap interrupted before its {B} resample fits were finished") from None
    alpha = (1 - level) / 2
    return pd.DataFrame({"estimate": fit.beta, "se": betas.std(axis=0, ddof=1),
                         f"{100 * alpha:g}%": np.quantile(betas, alpha, axis=0),
                         f"{100 * (1 - alpha):g}%": np.quantile(betas, 1 - alpha, axis=0)},
                        index=list(d.fixed_names))
