"""Choosing the budget by cross-validation.

Two schemes: ``"within"`` (the paper's: every fold holds out a share of each cluster's rows, so
validation clusters are known) and ``"cluster"`` (GroupKFold: whole clusters are held out and
predicted at population level). Any scikit-learn splitter with ``split(X, y, groups)`` can be
passed instead. The rule ``"min"`` takes the budget with the lowest mean validation MSE; ``"1se"``
the smallest budget within one standard error of it.

>>> import hiermio as hm
>>> res = hm.cv("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budgets=[0, 3, 6],
...             folds=3, random_state=0)
>>> res.best_budget_ in (0, 3, 6), res.table.shape[0]
(True, 3)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import pandas as pd
from joblib import delayed
from sklearn.model_selection import GroupKFold

from ..fitting.api import fit, fit_problem, problem_from_cross_products
from ..core.control import VECTOR_OPTIONS, FitControl, check_choice, check_integer, check_loop_options
from ..formula.design import Design, build_design, group_labels, carry_vector_options
from ..core.parallel import run_parallel
from ..core.exceptions import BudgetError, HierMIOError, HierMIOWarning, Interrupted
from ..formula.terms import parse_formula
from ..fitting.newclusters import check_cluster_features, check_rule
from .path import check_budget_list, path, sweep
from ..problem.selection import Budget, SelectionProblem
from ..data.sources import is_out_of_core
from ..data.splits import check_random_state, within_cluster_folds
from ..formula.streaming import learn_design
from .subsets import check_estimable, part_problem, partition_folds, validation_mse, whole_data
from ..problem.sufficient import split_cross_products
from ..fitting.results import MIOFit

__all__ = ["cv", "CVResult", "within_cluster_folds", "auto_budgets"]


def auto_budgets(largest: int, dense: int = 100, points: int = 60) -> list[int]:
    """The budgets ``budgets="auto"`` tries: every one up to the largest term's size when that is at
    most ``dense``; beyond, every one up to ``dense // 2`` and a geometric grid up to the size.

    >>> auto_budgets(6)
    [0, 1, 2, 3, 4, 5, 6]
    >>> grid = auto_budgets(3000); grid[:3], grid[-1], len(grid) < 120
    ([0, 1, 2], 3000, True)
    """
    if largest <= dense:
        return list(range(largest + 1))
    tail = np.unique(np.round(np.geomspace(dense // 2, largest, points)).astype(int))
    return sorted(set(range(dense // 2 + 1)) | set(tail.tolist()))


@dataclass
class CVResult:
    """Validation error per budget (and ridge, when several were tried), the choice and the fit on all data."""

    table: pd.DataFrame  # index budget, or (ridge, budget); columns mean_mse, se_mse, fold_0..
    best_budget_: int
    best_fit_: MIOFit = field(repr=False)
    rule: str = "min"
    scheme: str = "within"
    best_ridge_: float | None = None  # the chosen ridge when ``ridges`` were tried

    def plot(self):
        """Mean validation MSE against budget (one line per ridge tried), with one-standard-error bars."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        t = self.table
        series = ([(f"ridge {r:g}", t.xs(r, level="ridge")) for r in t.index.get_level_values("ridge").unique()]
                  if t.index.nlevels == 2 else [(None, t)])
        step = 0.015 * (max(t.index.get_level_values("budget")) or 1)  # ridges side by side, not on top
        for i, (label, part) in enumerate(series):
            x = np.asarray(part.index, float) + (i - (len(series) - 1) / 2) * step
            ax.errorbar(x, part.mean_mse, yerr=part.se_mse, marker="o", capsize=3, label=label)
        chosen = f"{self.best_budget_}" + (f", ridge {self.best_ridge_:g}" if self.best_ridge_ is not None else "")
        ax.axvline(self.best_budget_, ls="--", color="grey", label=f"chosen ({self.rule}): {chosen}")
        ax.set_xlabel("budget (nonzero cluster effects per term)")
        ax.set_ylabel(f"validation MSE ({self.scheme} folds)")
        ax.legend()
        fig.tight_layout()
        return fig


def _fold_errors(formula, train, valid, budgets, new_levels, cluster_features, options) -> list[float]:
    # a fold is screening work: its notes (relaxation gaps, capped budgets) are the final fit's to give
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HierMIOWarning)
        p = path(formula, train, budgets, validation=valid, new_levels=new_levels,
                 cluster_features=cluster_features, progress=False, **options)
    return p.table.validation_mse.tolist()


def _splits(scheme: Any, data: pd.DataFrame, group: str, folds: int, random_state: int) -> list:
    """(training rows, validation rows) of every fold, by position."""
    labels = group_labels(data, group)
    if scheme == "within":
        fold_of = within_cluster_folds(labels, folds, random_state)
        return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]
    if scheme == "cluster":
        n_clusters = labels.nunique()
        if folds > n_clusters:
            raise HierMIOError(f"scheme='cluster' holds out whole levels of {group!r}: folds={folds} "
                               f"needs at least {folds} levels, and it has {n_clusters}")
        return list(GroupKFold(n_splits=folds).split(data, groups=labels.to_numpy()))
    return list(scheme.split(data, groups=labels.to_numpy()))


def _partitioned_folds(design: Design, budgets: list[int], folds: int, random_state: int, control: FitControl,
                       grid: list[float], certify: bool, progress: bool | None) -> tuple[list, Callable]:
    """Every fold's rows summed in one pass over the partitions (:mod:`hiermio.workflow.subsets`): the
    fold paths to run (each a problem and the sums of its validation rows) and the final fit."""
    split = split_cross_products(design, lambda b: partition_folds(b, folds, random_state), folds,
                                 "cross-validation sums", progress, unweighted=True)[0]
    design, (parts, valid), whole = whole_data(design, [split[:folds], split[folds:]])
    names = design.fixed_names
    jobs = []
    for f in range(folds):
        if valid[f].n == 0:
            raise HierMIOError(f"cross-validation fold {f} has no rows: use fewer folds than rows per cluster")
        train = None
        for k, cp in enumerate(parts):
            train = train if k == f else cp if train is None else train.merge(cp)
        check_estimable(train, valid[f], names, f"cross-validation fold {f}")
        for r in grid:
            c = control.updated(ridge=r, certify=certify)
            with warnings.catch_warnings():  # a fold's notes (aliased columns) are screening detail
                warnings.simplefilter("ignore", HierMIOWarning)
                problem, columns = part_problem(design, train, 0, c, f"the training rows of cross-validation fold {f}")
            jobs.append(delayed(_fold_sweep)(problem, columns, valid[f], names, budgets, c))
    def fit_at(budget: Budget, ridge: float) -> MIOFit:
        c = control.updated(ridge=ridge)
        return fit_problem(problem_from_cross_products(design, whole, budget, c), c, progress=False)

    return jobs, fit_at


def _fold_sweep(problem, columns, valid, names, budgets, control) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HierMIOWarning)
        p = sweep(problem, budgets, control, lambda res: validation_mse(res, columns, valid, names), progress=False)
    return p.table.validation_mse.tolist()


def cv(
    formula: str,
    data: pd.DataFrame,
    budgets: Iterable[int] | Literal["auto"] = "auto",
    scheme: Literal["within", "cluster"] | Any = "within",
    folds: int = 5,
    rule: Literal["min", "1se"] = "min",
    random_state: int | None = 0,
    n_jobs: int | None = None,
    progress: bool | None = None,
    new_levels: str = "population",
    cluster_features: Sequence[str] | None = None,
    certify: bool = False,
    ridges: Sequence[float] | None = None,
    **fit_options,
) -> CVResult:
    """Validation MSE for each budget, the chosen budget, and the fit on all data at that budget.

    ``budgets="auto"`` tries every budget up to the largest term's size (a geometric grid beyond
    100, see :func:`auto_budgets`); a budget is capped at each term's own size, and a choice at the
    grid's upper edge warns. Each fold sweeps them as a warm-started
    :func:`hiermio.path`. Extra keyword arguments (``ridge``, ``selection``, ``time_limit``, ``gap``,
    ``seed``) go to the fits; ``new_levels`` is the rule that predicts held-out clusters (scheme
    "cluster"), with ``cluster_features`` naming the cluster-level columns of the "features" rule.
    Held-out clusters can only reward a budget when their effects are predictable from what is
    known about them (their covariates or cluster features); otherwise the scheme favours small
    budgets. The folds' paths screen (``certify=False``: heuristic supports with the relaxation's
    proven gap, see :func:`hiermio.path`); ``certify=True`` runs branch-and-bound on every fold
    and budget. The final fit at the chosen budget is certified either way. Folds run in parallel through joblib with ``n_jobs``.

    Folds are made of the rows the design keeps, by position, whatever the data's index (it may
    repeat labels); ``random_state`` (0..2**32-1, or None for a fresh seed) deals the rows of the
    "within" folds. Held-out clusters (``scheme="cluster"``) are assigned by their labels, so any
    order of the rows gives the same folds.

    ``ridges`` tunes the selection's ridge beside the budget: every fold sweeps the budgets once
    per ridge, the table is indexed by (ridge, budget), and ``best_ridge_`` is the choice (with
    ``rule="1se"``: the smallest budget within one standard error, then the largest ridge).

    >>> import hiermio as hm
    >>> res = hm.cv("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budgets=[0, 4],
    ...             ridges=[0.3, 1.0], folds=3)
    >>> res.table.index.names, res.best_ridge_ in (0.3, 1.0)
    (FrozenList(['ridge', 'budget']), True)
    """
    if ridges is not None and "ridge" in fit_options:
        raise HierMIOError("give either ridge (one value) or ridges (a grid to tune), not both")
    control = FitControl.from_options(fit_options, "cv", extra=VECTOR_OPTIONS)
    check_loop_options(progress, n_jobs)
    if ridges is not None:
        given = list(ridges) if hasattr(ridges, "__iter__") and not isinstance(ridges, (str, bytes)) else []
        if not given:
            raise HierMIOError(f"ridges must be a non-empty list of ridge weights, got {ridges!r}")
        ridges = [control.updated(ridge=r).ridge for r in given]  # each validated as a ridge
    parsed = parse_formula(formula)
    if not parsed.random:
        raise HierMIOError("cv chooses the budget of random terms; the formula has none")
    check_choice(rule, "rule", ("min", "1se"))
    folds = check_integer(folds, "folds", 2)
    random_state = check_random_state(random_state)
    check_rule(new_levels)
    cluster_features = check_cluster_features(cluster_features)
    if isinstance(scheme, str):
        check_choice(scheme, "scheme", ("within", "cluster"))
    elif not hasattr(scheme, "split"):
        raise HierMIOError(f"scheme must be 'within', 'cluster' or a scikit-learn splitter, got {scheme!r}")
    if is_out_of_core(data):
        if not (isinstance(scheme, str) and scheme == "within") or new_levels != "population" or cluster_features:
            raise HierMIOError("cv on data read in partitions holds out rows within clusters (scheme='within', "
                               "new_levels='population'): held-out clusters and the other new-level rules need the "
                               "rows in memory")
        design = learn_design(parsed, data, control.na_action, fit_options.get("weights"), fit_options.get("offset"),
                              progress=progress)
    else:
        data = carry_vector_options(data, fit_options)  # weights / offset given per row travel with the rows
        design = build_design(parsed, data, na_action=control.na_action, weights=fit_options.get("weights"),
                              offset=fit_options.get("offset"))
        data = design.data  # the rows the design kept, by position: folds are positions in them
    sizes = list(SelectionProblem.group_sizes_of(design, control.selection).values())
    if isinstance(budgets, str):
        if budgets != "auto":
            raise BudgetError(f"budgets must be 'auto' or a list of whole numbers, got {budgets!r}")
        budgets = auto_budgets(max(sizes))
    budgets = check_budget_list(budgets, "cv")
    options = control.fit_keywords(fit_options)
    grid = [control.ridge] if ridges is None else ridges
    if design.in_memory:
        splits = _splits(scheme, data, parsed.random[0].group, folds, random_state)
        jobs = (delayed(_fold_errors)(formula, data.iloc[tr], data.iloc[va], budgets, new_levels, cluster_features,
                                      {**options, "certify": certify, "ridge": r})
                for tr, va in splits for r in grid)

        def fit_at(budget: Budget, ridge: float) -> MIOFit:
            return fit(formula, data, budget, progress=False, **{**options, "ridge": ridge})
    else:
        jobs, fit_at = _partitioned_folds(design, budgets, folds, random_state, control, grid, certify, progress)
        splits = range(folds)
    try:
        errors = np.array(run_parallel(jobs, n_jobs, progress, desc="cross-validation folds"))  # (folds x ridges, budgets)
    except KeyboardInterrupt:
        raise Interrupted(f"cv interrupted before its {len(splits)} folds were finished; nothing was chosen") from None
    errors = errors.reshape(len(splits), len(grid) * len(budgets))  # ridge-major within each fold
    index = (pd.Index(budgets, name="budget") if ridges is None
             else pd.MultiIndex.from_product([grid, budgets], names=["ridge", "budget"]))
    table = pd.DataFrame({"mean_mse": errors.mean(axis=0),
                          "se_mse": errors.std(axis=0, ddof=1) / np.sqrt(len(splits)) if len(splits) > 1 else 0.0},
                         index=index)
    for f in range(len(splits)):
        table[f"fold_{f}"] = errors[f]
    keys = [(control.ridge, b) for b in budgets] if ridges is None else list(index)
    i_min = int(np.argmin(table.mean_mse.to_numpy()))
    if rule == "min":
        best_ridge, best = keys[i_min]
    else:
        limit = table.mean_mse.iloc[i_min] + table.se_mse.iloc[i_min]
        within = [k for k, m in zip(keys, table.mean_mse) if m <= limit]
        best_ridge, best = min(within, key=lambda k: (k[1], -k[0]))
    if best == budgets[-1] and best < max(sizes):
        warnings.warn(f"cv chose budget {best}, the largest one tried: a larger budget may be better; "
                      f"try budgets up to {max(sizes)}", HierMIOWarning, stacklevel=2)
    # one number for every term, capped at each term's size (nested and crossed terms differ in size)
    best_fit = fit_at(SelectionProblem.capped_budget(design, best, control.selection), best_ridge)
    label = scheme if isinstance(scheme, str) else type(scheme).__name__
    return CVResult(table, best, best_fit, rule, label, best_ridge if ridges is not None else None)
