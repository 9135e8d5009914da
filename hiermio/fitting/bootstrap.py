"""The cluster bootstrap of a fitted model's fixed effects: whole clusters resampled, the model
refitted on each resample by the function that made the fit (its ``fitter``), percentile intervals.

It lives below the results object so that ``fit.confint(kind="bootstrap")`` can use it: the results
never import the fitting entry point, they carry it (``MIOFit.fitter``, set by
:func:`hiermio.fitting.api.make_fit`).

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=3)
>>> list(bootstrap(fit, B=4, progress=False).columns)
['estimate', 'se', '2.5%', '97.5%']
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
from joblib import delayed

from ..core.control import FitControl, check_integer, check_loop_options, check_real
from ..core.exceptions import DataError, HierMIOError, HierMIOWarning, Interrupted
from ..core.parallel import run_parallel
from ..data.splits import check_random_state
from ..formula.terms import parse_formula

# a hiermio.fitting.results.MIOFit: read here, never imported (the results import this module)
FittedModel = Any

__all__ = ["bootstrap"]


def _refit_fixef(fitter: Callable, formula, data, budget, fit_options) -> pd.Series | str:
    """A resample's fixed effects, or why its rows cannot be fitted (a fixed factor left with one
    level: the fit on all rows could, so the resample is at fault, not the data)."""
    with warnings.catch_warnings():  # a resample's notes are screening detail
        warnings.simplefilter("ignore", HierMIOWarning)
        try:
            return fitter(formula, data, budget, progress=False, **fit_options).fixef()
        except DataError as exc:
            return str(exc)


def _unused_name(columns, name: str) -> str:
    while name in columns:
        name = f"({name})"
    return name


def _grouped_by(fit: FittedModel, column: str) -> tuple[str, dict]:
    """The fit's formula with every random term grouped by ``column`` instead of its grouping
    factor, and the fit's budget (tail pairs too) keyed by that formula's terms, term by term.

    >>> import hiermio as hm
    >>> df = hm.load_dataset("sleepstudy")
    >>> _grouped_by(hm.fit("Reaction ~ Days + (1 + Days || Subject)", df, 2), "copy")
    ('Reaction ~ Days + (1 | copy) + (0 + Days | copy)', {'(1 | copy)': 2, '(0 + Days | copy)': 2})
    """
    old = fit.design.formula
    quoted = column if column.isidentifier() else f"`{column}`"
    formula = " + ".join([old.fixed_formula, *(f"({t.expr} | {quoted})" for t in old.random)])
    new = parse_formula(formula)
    given = fit.budgets
    if fit.budget.selection == "cluster":
        return formula, {new.random[0].group: given[old.random[0].group]}
    return formula, {t.label: given[u.label] for t, u in zip(new.random, old.random)}


def bootstrap(fit: FittedModel, B: int = 200, level: float = 0.95, random_state: int | None = 0,
              n_jobs: int | None = None, progress: bool | None = None, certify: bool = False,
              **fit_options) -> pd.DataFrame:
    """Cluster bootstrap percentile intervals for the fixed effects.

    Whole clusters (of the first grouping factor) are resampled with replacement (seeded by
    ``random_state``, 0..2**32-1 or None), each copy given a level of its own (the grouping column
    keeps its values where the formula uses it otherwise), and the model is refitted at the same
    budgets, tail budgets included, with the fit's options
    (``fit_options`` override them). The refits screen (``certify=False``: heuristic supports, as
    in :func:`hiermio.cv` and :func:`hiermio.stability`), which gives practically the same
    intervals in a fraction of the time; ``certify=True`` certifies every resample. Ctrl-C stops
    the resampling (:class:`hiermio.Interrupted`). A resample that lacks the clusters identifying a
    fixed effect (a fixed factor's level found in some clusters only) has other fixed-effect
    columns: it is left out with a warning, and the bootstrap is refused when fewer than 2 remain.
    """
    level = check_real(level, "level", lambda v: 0 < v < 1, "strictly between 0 and 1")
    check_loop_options(progress, n_jobs)
    B = check_integer(B, "B", 2)
    base = fit.control.as_dict() if fit.control is not None else {"ridge": fit.ridge}
    control = FitControl.from_options({**base, "selection": fit.budget.selection, **fit_options, "certify": certify},
                                      "bootstrap")
    d = fit.design
    if fit.fitter is None:
        raise HierMIOError("the cluster bootstrap refits the model, and this fit does not carry the function "
                           "that made it (MIOFit.fitter); fit it with hiermio.fit")
    if not d.terms:
        raise HierMIOError("the cluster bootstrap needs a random-effect term")
    d.require_rows("the cluster bootstrap (which resamples whole clusters of rows)")
    group = d.terms[0].term.group
    if ":" in group or any(t.term.group != group for t in d.terms):
        raise HierMIOError("the cluster bootstrap supports one grouping factor given by one column")
    random_state = check_random_state(random_state)
    # Each resampled copy of a cluster is a level of its own: a new column numbers the copies and the
    # random terms group by it, so the grouping column keeps its values wherever else the formula
    # uses it (a covariate, a slope). Rows are taken by position, through the design's level codes.
    copy = _unused_name(d.data.columns, "(cluster copy)")
    formula, budget = _grouped_by(fit, copy)
    rows_of_level = np.split(np.argsort(d.terms[0].codes, kind="stable"), np.cumsum(d.terms[0].level_sizes)[:-1])
    rng = np.random.default_rng(random_state)
    samples = []
    for _ in range(B):
        pick = rng.integers(0, len(rows_of_level), len(rows_of_level))
        rows = np.concatenate([rows_of_level[k] for k in pick])
        copies = np.repeat(np.arange(len(pick)), [len(rows_of_level[k]) for k in pick])
        samples.append(d.data.iloc[rows].assign(**{copy: copies}).reset_index(drop=True))
    opts = {**control.as_dict(), "weights": d.weights_column, "offset": d.offset_column}
    # each resampled copy is a level of its own, so every resample has as many levels as the data
    try:
        fixefs = run_parallel((delayed(_refit_fixef)(fit.fitter, formula, s, budget, opts) for s in samples),
                              n_jobs, progress, desc="bootstrap fits")
    except KeyboardInterrupt:
        raise Interrupted(f"bootstrap interrupted before its {B} resample fits were finished") from None
    # A resample without the clusters of a fixed factor's level has other fixed columns (that level's
    # is dropped, or another level becomes the reference): its coefficients mean something else.
    names = list(d.fixed_names)
    kept = [f.to_numpy() for f in fixefs if isinstance(f, pd.Series) and list(f.index) == names]
    if len(kept) < B:
        lost = sorted({n for f in fixefs if isinstance(f, pd.Series) for n in set(names) ^ set(f.index)})
        failed = next((f for f in fixefs if isinstance(f, str)), None)
        what = (f"{B - len(kept)} of {B} resamples lack the clusters that identify some fixed effects (a fixed "
                "factor whose levels belong to some clusters only): "
                + "; ".join(([f"they have other fixed-effect columns ({lost})"] if lost else [])
                            + ([f"a resample cannot be fitted: {failed}"] if failed else [])))
        if len(kept) < 2:
            raise HierMIOError(f"the cluster bootstrap cannot resample this fit: {what}; resample by hand, or make "
                               "the factor a grouping factor")
        warnings.warn(f"{what}, and are left out: the intervals come from the other {len(kept)}",
                      HierMIOWarning, stacklevel=2)
    betas = np.array(kept)
    alpha = (1 - level) / 2
    return pd.DataFrame({"estimate": fit.beta, "se": betas.std(axis=0, ddof=1),
                         f"{100 * alpha:g}%": np.quantile(betas, alpha, axis=0),
                         f"{100 * (1 - alpha):g}%": np.quantile(betas, 1 - alpha, axis=0)},
                        index=names)
