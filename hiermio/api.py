"""``hiermio.fit``: formula and data in, certified L0-constrained mixed model out."""

from __future__ import annotations

import time
from dataclasses import replace
from numbers import Real
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from .design import Design, build_design
from .exceptions import HierMIOError
from .heuristics import greedy, local_search
from .oa import SolverOptions, SolverProgress, bound_only, solve
from .parallel import progress_enabled
from .results import MIOFit
from .selection import Budget, SelectionProblem

__all__ = ["fit", "fit_problem", "default_mu"]


def default_mu(design: Design, ridge: float) -> np.ndarray:
    """Ridge weight of every random-effect column: ``ridge`` x the median over levels of z'z.

    For a random intercept z'z is the level's row count, so ``ridge=0.1`` shrinks the effect of a
    cluster of median size by 1/(1 + 0.1), about 9 %; slopes get the same relative shrinkage
    whatever the units of their covariate.

    >>> import pandas as pd
    >>> from hiermio.design import build_design
    >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1., 2, 3, 4], "g": [0, 0, 0, 1]}))
    >>> default_mu(d, 0.5).tolist()
    [1.0, 1.0]
    """
    parts = []
    for t in design.terms:
        per_coef = []
        for c in range(t.q):
            w = t.values[:, c] ** 2 if design.weights is None else design.weights * t.values[:, c] ** 2
            zz = np.bincount(t.codes, weights=w, minlength=t.n_levels)
            med = float(np.median(zz))
            per_coef.append(ridge * (med if med > 0 else max(float(zz.mean()), 1.0)))
        parts.append(np.tile(per_coef, t.n_levels))
    return np.concatenate(parts) if parts else np.zeros(0)


def _check_options(ridge: float, time_limit: float, gap: float) -> None:
    for name, val, ok in [("ridge", ridge, lambda v: v > 0), ("time_limit", time_limit, lambda v: v > 0),
                          ("gap", gap, lambda v: 0 <= v < 1)]:
        if isinstance(val, bool) or not isinstance(val, Real) or not np.isfinite(val) or not ok(val):
            rule = "in [0, 1)" if name == "gap" else "positive"
            raise HierMIOError(f"{name} must be a finite number {rule}, got {val!r}")


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
    ridge: float = 0.1,
    selection: Literal["column", "cluster"] = "column",
    na_action: Literal["drop", "raise"] = "drop",
    time_limit: float = 60.0,
    gap: float = 1e-4,
    seed: int = 0,
    threads: int = 1,
    verbose: bool = False,
    progress: bool | None = None,
    callback: Callable[[SolverProgress], None] | None = None,
    certify: bool = True,
    weights: Any = None,
    offset: Any = None,
) -> MIOFit:
    """Fit an lme4 formula with at most ``budget`` nonzero cluster effects, certified by SCIP.

    Parameters
    ----------
    formula
        An lme4 formula, e.g. ``"Reaction ~ Days + (1 + Days | Subject)"``.
    data
        A data frame with every column the formula names.
    budget
        L0 budget: an int for every random term (``selection="column"``) or grouping factor
        (``"cluster"``), or a dict keyed by term label (``"(1 + Days | Subject)"``) or factor.
    ridge
        Ridge weight on the cluster effects, relative to the median per-level z'z of each column
        (see :func:`default_mu`). Fixed effects are not penalized.
    selection
        ``"column"``: one binary per term x level x coefficient and one budget per term;
        ``"cluster"``: one binary per level (its intercept and slopes together), one budget per factor.
    na_action
        ``"drop"`` rows with missing values (counted in the summary) or ``"raise"``.
    time_limit, gap
        Stop after this many seconds (the heuristics may use half of them, the branch-and-cut the
        rest), or once the relative gap is this small. Either way the best support found is
        returned with the gap proven.
    seed, threads, verbose
        SCIP's random seeds, its ``parallel/maxnthreads`` and its log. The branch-and-cut calls
        back into Python for every cut, so it runs on one thread whatever ``threads`` says.
    progress
        Show a progress bar (default: when stderr is a terminal).
    callback
        Called with a :class:`SolverProgress` at most twice a second during the search.
    certify
        ``False`` skips the branch-and-bound: the heuristic support is returned with the gap the
        continuous relaxation alone proves (status ``"relaxation_bound"``), in a fraction of the time.
    weights, offset
        lme4's ``weights=`` (prior weights: the squared errors are weighted) and ``offset=`` (a
        known term of the linear predictor, added to any ``offset()`` in the formula): a column
        name, or one number per row.

    Examples
    --------
    >>> import hiermio as hm
    >>> fit = hm.fit("Reaction ~ Days + (1 + Days | Subject)", hm.load_dataset("sleepstudy"), budget=5)
    >>> fit.certificate.status
    'optimal'
    >>> len(fit.selected["(1 + Days | Subject)"]) <= 5
    True
    """
    _check_options(ridge, time_limit, gap)
    t0 = time.perf_counter()
    design = build_design(formula, data, na_action=na_action, weights=weights, offset=offset)
    mu = default_mu(design, ridge)
    problem = SelectionProblem.build(design, budget, mu, selection)
    bar_update, bar_close = _progress_bar(progress)

    def report(p: SolverProgress) -> None:
        for f in (bar_update, callback):
            if f is not None:
                f(p)

    opts = SolverOptions(time_limit=time_limit, gap=gap, seed=seed, threads=threads, verbose=verbose,
                         callback=report if (bar_update or callback) else None)
    try:
        return fit_problem(design, problem, ridge, opts, t0=t0, certify=certify)
    finally:
        bar_close()


def fit_problem(
    design: Design,
    problem: SelectionProblem,
    ridge: float,
    options: SolverOptions,
    warm: np.ndarray | None = None,
    t0: float | None = None,
    certify: bool = True,
) -> MIOFit:
    """Heuristic start (greedy from ``warm`` if given, then swaps), branch-and-cut, fitted result.

    The shared step of :func:`fit` and :func:`hiermio.path`, which builds the problem once per budget
    on the same sufficient statistics. With ``certify=False`` the branch-and-cut is skipped and the
    heuristic support is certified by the continuous relaxation's bound alone.
    """
    t0 = time.perf_counter() if t0 is None else t0
    t1 = time.perf_counter()
    # the time limit covers the heuristics and the search: the heuristics may use half of it
    heuristic_deadline = t1 + 0.5 * options.time_limit
    start = local_search(problem, greedy(problem, start=warm, deadline=heuristic_deadline), deadline=heuristic_deadline)
    t2 = time.perf_counter()
    rest = replace(options, time_limit=max(0.0, options.time_limit - (t2 - t1)))
    support, cert = solve(problem, [start], rest) if certify else (start, bound_only(problem, start, rest))
    mu = problem.stats.mu
    ev = problem.stats.evaluate(problem.columns(support))
    rss = ev.value - float(np.sum(mu * ev.gamma**2))
    timings = {"design": t1 - t0, "first_solution": t2 - t1, "search": cert.time, "total": time.perf_counter() - t0}
    return MIOFit(design=design, problem=problem, support=support, beta=ev.beta, gamma=ev.gamma, mu=mu,
                  ridge=ridge, rss=rss, fixed_precision=ev.fixed_precision, certificate=cert, timings=timings)
