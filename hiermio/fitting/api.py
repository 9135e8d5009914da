"""``hiermio.fit``: formula and data in, certified L0-constrained mixed model out."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from ..core.control import REFIT_RIDGE, FitControl
from ..formula.design import Design, build_design
from ..data.sources import is_out_of_core
from ..formula.streaming import finish_fixed_columns, learn_design
from ..problem.sufficient import CrossProducts, SufficientStats, cross_products
from ..core.exceptions import HierMIOError, HierMIOWarning, Interrupted
from ..solve.heuristics import greedy, local_search
from ..problem.inner import one_blas_thread
from ..solve.certificate import Certificate, SolverProgress
from ..solve.oa import SolverOptions, bound_only, fixed_effects_form, solve
from ..core.parallel import progress_enabled
from .results import MIOFit
from ..problem.selection import Budget, SelectionProblem

__all__ = ["fit", "build_problem", "problem_from_cross_products", "fit_problem", "optimize", "make_fit", "Solution",
           "default_mu", "solver_warnings"]


def default_mu(design: Design, ridge: float, zz: np.ndarray | None = None) -> np.ndarray:
    """Ridge weight of every random-effect column: ``ridge`` x the median over levels of z'z.

    For a random intercept z'z is the level's row count, so the default ``ridge=1`` halves the
    selection's estimate of a cluster of median size (1/(1 + 1)); slopes get the same relative
    shrinkage whatever the units of their covariate. The shrinkage is the selection's only: the
    reported estimates are refitted without it (``refit=True``). The default was chosen by
    ``benchmarks/ridge_study.py`` (README, "Choosing the ridge"). ``zz``: every column's
    (weighted) z'z, the diagonal of Z'WZ, when the rows are not at hand.

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1., 2, 3, 4], "g": [0, 0, 0, 1]}))
    >>> default_mu(d, 0.5).tolist()
    [1.0, 1.0]
    """
    parts = []
    for off, t in zip(design.term_offsets(), design.terms):
        per_coef = []
        for c in range(t.q):
            if zz is not None:
                col_zz = zz[off + c: off + t.n_columns: t.q]
            else:
                w = t.values[:, c] ** 2 if design.weights is None else design.weights * t.values[:, c] ** 2
                col_zz = np.bincount(t.codes, weights=w, minlength=t.n_levels)
            med = float(np.median(col_zz))
            per_coef.append(ridge * (med if med > 0 else max(float(col_zz.mean()), 1.0)))
        parts.append(np.tile(per_coef, t.n_levels))
    return np.concatenate(parts) if parts else np.zeros(0)


def _progress_bar(enabled: bool | None) -> tuple[Callable[[SolverProgress], None] | None, Callable[[], None]]:
    if not progress_enabled(enabled):
        return None, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=None, desc="branch-and-cut", unit="node", leave=False)

    def update(p: SolverProgress) -> None:
        bar.n = p.nodes
        bar.set_postfix(gap=f"{100 * p.gap:.3g}%", cuts=p.cuts, refresh=True)

    return update, bar.close


def fit(
    formula: str,
    data: pd.DataFrame,
    budget: Budget,
    *,
    ridge: float = FitControl.ridge,
    selection: Literal["column", "cluster"] = FitControl.selection,
    na_action: Literal["drop", "raise"] = FitControl.na_action,
    time_limit: float = FitControl.time_limit,
    gap: float = FitControl.gap,
    seed: int = FitControl.seed,
    threads: int = FitControl.threads,
    verbose: bool = FitControl.verbose,
    certify: bool = FitControl.certify,
    enumerate_below: int = FitControl.enumerate_below,
    search: Literal["auto", "fixed_effects", "outer_approximation"] = FitControl.search,
    refit: bool = FitControl.refit,
    progress: bool | None = None,
    callback: Callable[[SolverProgress], None] | None = None,
    weights: Any = None,
    offset: Any = None,
) -> MIOFit:
    """Fit an lme4 formula with at most ``budget`` nonzero cluster effects, with a certificate of optimality.

    Parameters
    ----------
    formula
        An lme4 formula, e.g. ``"Reaction ~ Days + (1 + Days | Subject)"``.
    data
        A data frame with every column the formula names.
    budget
        L0 budget: an int for every random term (``selection="column"``) or grouping factor
        (``"cluster"``), or a dict keyed by term label (``"(1 + Days | Subject)"``) or factor. A
        pair ``(below, above)`` for a term with one coefficient per level is a *tail budget*: at
        most ``below`` levels with a negative effect and ``above`` with a positive one
        (``{"(1 | school)": (3, 5)}``; the effects are sign-constrained, see :mod:`hiermio.problem.tails`).
    ridge
        Ridge weight on the cluster effects, relative to the median per-level z'z of each column
        (see :func:`default_mu`); at least 1e-6. Fixed effects are not penalized.
    selection
        ``"column"``: one binary per term x level x coefficient and one budget per term;
        ``"cluster"``: one binary per level (its intercept and slopes together), one budget per factor.
    na_action
        ``"drop"`` rows with missing values (counted, with a warning) or ``"raise"``.
    time_limit, gap
        Stop after this many seconds (the heuristics may use half of them, the branch-and-cut the
        rest), or once the relative gap is this small. Either way the best support found is
        returned with the gap proven; a gap above ``gap`` gives a :class:`HierMIOWarning`.
    seed, threads, verbose
        SCIP's random seed (0..2^31-1), its ``parallel/maxnthreads`` and its log. The
        branch-and-cut calls back into Python for every cut, so it runs on one thread whatever
        ``threads`` says.
    certify
        ``False`` skips the branch-and-bound: the heuristic support is returned with the gap the
        continuous relaxation alone proves (status ``"relaxation_bound"``), in a fraction of the time.
    enumerate_below
        Problems with at most this many full supports are solved exactly by evaluating them all.
    search
        ``"auto"`` (default): when the cluster effects belong to one grouping factor or to
        nested ones (``(1 | batch/cask)``), no term has a tail budget and there are at most 10
        fixed effects, branch on the fixed effects (:mod:`hiermio.solve.fixed_branching`), which
        certifies small ridges and thousands of clusters in seconds; otherwise (crossed factors,
        tails) SCIP's outer approximation. ``"fixed_effects"`` or
        ``"outer_approximation"`` force one.
    refit
        Select, then refit (default): the estimates are refitted without the ridge on the selected
        support; ``fit.certificate`` still describes the selection. ``False``: the ridge estimates.
    progress
        Show a progress bar (default: when stderr is a terminal).
    callback
        Called with a :class:`SolverProgress` at most twice a second during the search.
    weights, offset
        lme4's ``weights=`` (prior weights: the squared errors are weighted) and ``offset=`` (a
        known term of the linear predictor, added to any ``offset()`` in the formula): a column
        name, or one number per row.

    All options are validated (by :class:`hiermio.core.control.FitControl`) before any work starts.
    Ctrl-C during the search raises :class:`hiermio.Interrupted`, a ``KeyboardInterrupt`` whose
    ``result`` is the fit with the best support found and its proven gap.

    Examples
    --------
    >>> import hiermio as hm
    >>> fit = hm.fit("Reaction ~ Days + (1 + Days | Subject)", hm.load_dataset("sleepstudy"), budget=5)
    >>> fit.certificate.status in ("optimal", "gap_limit"), fit.certificate.gap <= 1e-4
    (True, True)
    >>> len(fit.selected["(1 + Days | Subject)"]) <= 5
    True
    >>> tails = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), {"(1 | Subject)": (1, 2)})
    >>> effects = tails.ranef()["Subject"]["(Intercept)"]
    >>> int((effects < 0).sum()), int((effects > 0).sum())
    (1, 2)
    """
    control = FitControl(ridge=ridge, selection=selection, na_action=na_action, time_limit=time_limit, gap=gap,
                         seed=seed, threads=threads, verbose=verbose, certify=certify,
                         enumerate_below=enumerate_below, search=search, refit=refit)
    if callback is not None and not callable(callback):
        raise HierMIOError(f"callback must be a function of one SolverProgress, got {callback!r}")
    t0 = time.perf_counter()
    problem = build_problem(formula, data, budget, control, weights=weights, offset=offset)
    return fit_problem(problem, control, progress, callback, design_time=time.perf_counter() - t0)


def fit_problem(problem: SelectionProblem, control: FitControl = FitControl(), progress: bool | None = None,
                callback: Callable[[SolverProgress], None] | None = None, design_time: float = 0.0) -> MIOFit:
    """Stages 2 and 3 as :func:`fit` runs them: the search (with its progress bar), the fit, its
    warnings, and :class:`hiermio.Interrupted` on Ctrl-C.

    >>> import hiermio as hm
    >>> fit_problem(build_problem("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), 3)).n_nonzero
    3
    """
    bar_update, bar_close = _progress_bar(progress)

    def report(p: SolverProgress) -> None:
        for f in (bar_update, callback):
            if f is not None:
                f(p)

    try:
        solution = optimize(problem, control, callback=report if (bar_update or callback) else None)
    finally:
        bar_close()
    res = make_fit(problem, solution, control, design_time=design_time)
    for msg in res.solver_warnings:
        warnings.warn(msg, HierMIOWarning, stacklevel=3)
    if res.certificate.status == "interrupted":
        raise Interrupted(f"fit interrupted after {res.certificate.time:.1f} s: the best support found, with its "
                          f"proven gap of {100 * res.certificate.gap:.3g}%, is in this exception's .result", res)
    return res


# ---------------------------------------------------------------------------------- the stages
def build_problem(formula: str, data: Any, budget: Budget, control: FitControl = FitControl(), *,
                  weights: Any = None, offset: Any = None, progress: bool | None = None) -> SelectionProblem:
    """Stage 1: formula and data -> design -> ridge weights -> inner problem -> units and budgets.

    Everything is checked here, before the search: the formula against the data, the budget
    against the terms. The one pass over the rows happens here; nothing after it depends on n.
    ``data`` read in partitions (a dask DataFrame, a parquet path, chunks: :mod:`hiermio.formula.streaming`)
    takes two or three passes, one partition in memory at a time.

    >>> import hiermio as hm
    >>> problem = build_problem("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), 3)
    >>> problem.n_units, problem.budgets.tolist(), problem.design.p
    (18, [3], 2)
    """
    if is_out_of_core(data):
        design = learn_design(formula, data, control.na_action, weights, offset, progress=progress)
    else:
        design = build_design(formula, data, na_action=control.na_action, weights=weights, offset=offset)

    def statistics() -> SufficientStats:  # the pass over the rows: SelectionProblem.build checks the budget first
        return _statistics(*finish_fixed_columns(design, cross_products(design, progress=progress)), control)

    return SelectionProblem.build(design, budget, None, control.selection, stats=statistics)


def problem_from_cross_products(design: Design, cp: CrossProducts, budget: Budget,
                                control: FitControl = FitControl()) -> SelectionProblem:
    """Stage 1 from sums already made (:func:`hiermio.problem.sufficient.split_cross_products`): a fit
    on a fold or a half-sample of data read in partitions, or on all of it, with no further pass.
    Fixed columns that are linear combinations of others in these rows are dropped first.

    >>> import hiermio as hm
    >>> from hiermio.problem.sufficient import cross_products
    >>> d = hm.build_design("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"))
    >>> problem_from_cross_products(d, cross_products(d), 3).n_units
    18
    """
    final, cp = finish_fixed_columns(design, cp)
    return SelectionProblem.build(final, budget, None, control.selection, stats=_statistics(final, cp, control))


def _statistics(design: Design, cp: CrossProducts, control: FitControl) -> SufficientStats:
    stats = SufficientStats.from_cross_products(cp, design, np.ones(design.n_columns))
    return stats.with_mu(default_mu(design, control.ridge, zz=stats.G.diagonal()))


@dataclass
class Solution:
    """What stage 2 returns: the support, its certificate, and where the time went."""

    support: np.ndarray
    certificate: Certificate
    timings: dict[str, float]  # seconds: first_solution (greedy), local_search (swaps), search


@one_blas_thread
def optimize(problem: SelectionProblem, control: FitControl = FitControl(), warm: np.ndarray | None = None,
             callback: Callable[[SolverProgress], None] | None = None) -> Solution:
    """Stage 2: heuristic start (greedy from ``warm`` if given, then swaps), then the search.

    Small problems are enumerated; others go to SCIP's branch-and-cut, or with
    ``control.certify=False`` keep the heuristic support with the lower bound's gap. The time
    limit covers the heuristics and the search: greedy gives the first support (large budgets in
    batches), then the swap search may use 15 % of the limit when the branch-and-cut follows (it
    improves the bound far more than swaps improve the support), half of it when screening
    (``certify=False``: the swaps are then the only search).

    >>> import hiermio as hm
    >>> problem = build_problem("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), 3)
    >>> optimize(problem).certificate.status
    'optimal'
    """
    t1 = time.perf_counter()
    options = SolverOptions(time_limit=control.time_limit, gap=control.gap, seed=control.seed,
                            threads=control.threads, verbose=control.verbose, callback=callback,
                            enumeration_limit=control.enumerate_below, search=control.search)
    heuristic_deadline = t1 + (0.15 if control.certify else 0.5) * options.time_limit
    form = fixed_effects_form(problem, options) if control.certify and not problem.stats.exact_fit else None
    if form is not None:  # its search finds its own incumbents: the first is one sort, no swaps needed
        first = form.first_support()
        t_first = time.perf_counter()
        start = first
    else:
        first = greedy(problem, start=warm, deadline=heuristic_deadline)
        t_first = time.perf_counter()
        start = local_search(problem, first, deadline=heuristic_deadline)
    t2 = time.perf_counter()
    rest = replace(options, time_limit=max(0.0, options.time_limit - (t2 - t1)))
    if control.certify:
        support, cert = solve(problem, [start] + ([warm] if form is not None and warm is not None else []), rest,
                              form=form)
    else:
        support, cert = start, bound_only(problem, start, rest)
    cert = replace(cert, null=problem.value(np.zeros(problem.n_units)))  # for the gap relative to the signal
    return Solution(support, cert, {"first_solution": t_first - t1, "local_search": t2 - t_first, "search": cert.time})


def make_fit(problem: SelectionProblem, solution: Solution, control: FitControl = FitControl(),
             design_time: float = 0.0) -> MIOFit:
    """Stage 3: the estimates at the support, and the fitted model with its warnings.

    Warnings are collected (``solver_warnings``), not emitted: the caller decides.

    >>> import hiermio as hm
    >>> problem = build_problem("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), 3)
    >>> make_fit(problem, optimize(problem)).n_nonzero
    3
    """
    stats, support, cert = problem.stats, solution.support, solution.certificate
    # select, then refit: the same support with a ridge too small to shrink what the data identify
    inner = stats.with_mu(stats.mu * REFIT_RIDGE) if control.refit else stats
    ev = inner.evaluate(problem.columns(support))
    rss = ev.value - float(np.sum(inner.column_mu * ev.gamma**2))
    timings = {"design": design_time, **solution.timings,
               "total": design_time + sum(solution.timings.values())}
    notes = solver_warnings(cert, control, problem)
    design = problem.design
    res = MIOFit(design=design, problem=problem, budget=problem.budget_record(), support=support, beta=ev.beta,
                 gamma=ev.gamma, mu=stats.column_mu, estimate_mu=inner.column_mu, ridge=control.ridge, rss=max(rss, 0.0),
                 fixed_cov_unscaled=ev.fixed_cov_unscaled, certificate=cert, timings=timings, control=control,
                 solver_warnings=notes, fitter=fit)
    if res.saturated:  # lm says so too: its standard errors are NaN
        notes.append(f"the fit is saturated: {res.nobs} rows, {design.p} fixed effects and {res.n_nonzero} nonzero "
                     f"cluster effects leave {res.df_residual} residual degrees of freedom; sigma, standard errors "
                     "and intervals are NaN (lower the budget)")
    res.warnings = [*design.messages, *problem.notes, *notes]
    return res


def solver_warnings(cert: Certificate, control: FitControl, problem: SelectionProblem) -> list[str]:
    """What the user must hear about a certificate: a gap above the one asked for, an interrupt,
    a response the fixed part already fits exactly."""
    out = []
    if problem.stats.exact_fit:
        out.append("the fixed part fits the response exactly (residual norm below 1e-10 of the response's): "
                   "there is nothing for cluster effects to explain, so none is selected")
    elif cert.status == "interrupted":
        out.append(f"interrupted: the support is the best found, with a proven gap of {100 * cert.gap:.3g}%")
    elif cert.gap > control.gap * (1 + 1e-9) + 1e-12:
        why = {"time_limit": f"the search stopped at its time limit ({control.time_limit:g} s)",
               "node_limit": "the search stopped at its node limit",
               "relaxation_bound": "certify=False: only the continuous relaxation bounds the optimum"}
        reason = why.get(cert.status, f"the search ended with status {cert.status!r}")
        signal = "" if cert.signal_gap != cert.signal_gap else \
            f" ({100 * cert.signal_gap:.3g}% of what the cluster effects explain)"
        out.append(f"{reason} with a proven gap of {100 * cert.gap:.3g}%{signal}, above the requested "
                   f"{100 * control.gap:.3g}%: "
                   "a better support may exist (raise time_limit, or a larger ridge certifies faster)")
    return out
