"""Stability selection: how surely is a cluster atypical?

Complementary pairs of half-samples: each cluster's rows are split at random into two halves, the
model is fitted on each half, and a level's selection frequency is the share of the B fits in which
its effect is nonzero. The watch list keeps levels selected in at least a share ``threshold`` of
fits, with Meinshausen and Buehlmann's bound on the expected number of falsely flagged levels,
E[V] <= q^2 / ((2 threshold - 1) p), where q is the mean number of levels selected per fit and p
the number of levels.

>>> import hiermio as hm
>>> st = hm.stability("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=3, B=4)
>>> st.frequencies.shape, float(st.frequencies.to_numpy().sum()) <= 3.0 * 4 / 4
((18, 1), True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import delayed

from ..fitting.api import fit, make_fit, optimize
from ..core.control import VECTOR_OPTIONS, FitControl, check_integer, check_loop_options, check_real
from ..formula.design import build_design, carry_vector_options
from ..core.parallel import run_parallel
from ..core.exceptions import HierMIOError, HierMIOWarning, Interrupted
from ..problem.selection import Budget, SelectionProblem
from ..data.sources import is_out_of_core
from ..data.splits import check_random_state, shuffled_clusters
from ..formula.streaming import learn_design
from .subsets import part_problem, partition_folds, whole_data
from ..problem.sufficient import split_cross_products

__all__ = ["stability", "Stability", "mb_bound"]


def mb_bound(q: float, p: int, threshold: float) -> float:
    """Meinshausen-Buehlmann bound on expected false selections (needs threshold > 0.5).

    >>> mb_bound(q=5, p=100, threshold=0.75)
    0.5
    """
    threshold = check_real(threshold, "threshold", lambda v: 0.5 < v <= 1, "in (0.5, 1] for the error bound")
    return q**2 / ((2 * threshold - 1) * p)


@dataclass
class Stability:
    """Selection frequency of every level (rows) in every random term (columns)."""

    frequencies: pd.DataFrame
    mean_selected: pd.Series  # q per term: mean number of nonzero levels per fit
    B: int

    def watchlist(self, threshold: float = 0.8) -> pd.DataFrame:
        """Levels selected in at least ``threshold`` of the fits, per term, with the error bound.

        The bound is in ``.attrs["expected_false"]`` (per term) and printed by ``str``.
        """
        rows = []
        bounds = {}
        for term in self.frequencies.columns:
            f = self.frequencies[term].dropna()
            bounds[term] = mb_bound(self.mean_selected[term], len(f), threshold)
            for level, v in f[f >= threshold].sort_values(ascending=False).items():
                rows.append({"term": term, "level": level, "frequency": v})
        out = pd.DataFrame(rows, columns=["term", "level", "frequency"])
        out.attrs["expected_false"] = bounds
        out.attrs["threshold"] = threshold
        return out

    def plot(self, threshold: float = 0.8, term: str | None = None):
        """Selection frequency per level, sorted, with the threshold."""
        import matplotlib.pyplot as plt

        term = term or self.frequencies.columns[0]
        f = self.frequencies[term].dropna().sort_values()
        fig, ax = plt.subplots(figsize=(6, max(3, 0.18 * len(f))))
        ax.barh([str(i) for i in f.index], f.to_numpy(), color=np.where(f >= threshold, "C3", "C0"))
        ax.axvline(threshold, ls="--", color="grey")
        ax.set_xlabel(f"selection frequency over {self.B} half-sample fits")
        ax.set_title(f"{term}: expected false flags <= {mb_bound(self.mean_selected[term], len(f), threshold):.2f}")
        fig.tight_layout()
        return fig


def _selected(formula, half, budget, options) -> dict[str, list]:
    with warnings.catch_warnings():  # a half-sample's notes are screening detail
        warnings.simplefilter("ignore", HierMIOWarning)
        return fit(formula, half, budget, progress=False, **options).selected


def _needs_term(design) -> None:
    if not design.terms:
        raise HierMIOError("stability selection needs a random-effect term; the formula has none")


def _partitioned_halves(design, budget: Budget, B: int, random_state: int, control: FitControl,  # noqa: N803
                        progress: bool | None) -> list:
    """The B half-samples' sums from one pass over the partitions (:mod:`hiermio.workflow.subsets`): each
    pair splits every cluster's rows in each partition in two; the fits to run."""
    pairs = split_cross_products(design, lambda b: np.stack([partition_folds(b, 2, random_state, split=i)
                                                             for i in range(B // 2)]),
                                 2, "half-sample sums", progress)
    design, pairs, _ = whole_data(design, pairs)
    jobs = []
    with warnings.catch_warnings():  # a half-sample's notes (aliased columns) are screening detail
        warnings.simplefilter("ignore", HierMIOWarning)
        for i, pair in enumerate(pairs):
            for h, cp in enumerate(pair):
                problem, _ = part_problem(design, cp, budget, control, f"half-sample {2 * i + h}")
                jobs.append(delayed(_selected_of)(problem, control))
    return jobs


def _selected_of(problem, control: FitControl) -> dict[str, list]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HierMIOWarning)
        return make_fit(problem, optimize(problem, control), control).selected


def stability(
    formula: str,
    data: pd.DataFrame,
    budget: Budget,
    B: int = 100,  # noqa: N803 - the literature's name
    random_state: int | None = 0,
    n_jobs: int | None = None,
    progress: bool | None = None,
    certify: bool = False,
    **fit_options,
) -> Stability:
    """Selection frequencies over ``B`` fits on complementary half-samples of every cluster's rows.

    Each cluster's rows (the rows the design keeps, by position) are dealt into halves seeded by
    ``random_state`` (0..2**32-1, or None for a fresh seed); per-row ``weights`` / ``offset`` go
    with their rows. A budget above a half-sample's levels is capped there.
    The half-sample fits screen (``certify=False``: heuristic supports, see :func:`hiermio.fit`);
    ``certify=True`` runs branch-and-bound on each. Other keywords go to :func:`hiermio.fit`.
    Ctrl-C stops the fits (:class:`hiermio.Interrupted`).

    Data read in partitions (a parquet path, a dask DataFrame, chunks) are read once more after
    the design's passes, however large ``B``: each pair splits every cluster's rows within each
    partition, and all B half-samples are summed in that pass (:mod:`hiermio.workflow.subsets`).
    """
    control = FitControl.from_options({**fit_options, "certify": certify}, "stability", extra=VECTOR_OPTIONS)
    check_loop_options(progress, n_jobs)
    B = check_integer(B, "B", 2)
    if B % 2:
        raise HierMIOError(f"B must be an even number of fits (complementary pairs), at least 2; got {B!r}")
    random_state = check_random_state(random_state)
    if is_out_of_core(data):
        design = learn_design(formula, data, control.na_action, fit_options.get("weights"), fit_options.get("offset"),
                              progress=progress)
        _needs_term(design)
        SelectionProblem.check_budget(design, budget, control.selection)  # before the pass
        jobs = _partitioned_halves(design, budget, B, random_state, control, progress)
    else:
        data = carry_vector_options(data, fit_options)  # per-row weights / offset travel with the rows
        options = control.fit_keywords(fit_options)
        design = build_design(formula, data, na_action=control.na_action, weights=options.get("weights"),
                              offset=options.get("offset"))
        _needs_term(design)
        SelectionProblem.check_budget(design, budget, control.selection)  # before the half-sample fits
        data = design.data  # the rows the design kept; the halves are positions in them
        labels = design.terms[0].codes
        rng = np.random.default_rng(random_state)
        halves = []
        for _ in range(B // 2):
            first = np.zeros(len(data), dtype=bool)
            for idx in shuffled_clusters(labels, rng):
                first[idx[: len(idx) // 2]] = True
            halves += [first, ~first]
        jobs = (delayed(_selected)(formula, data.iloc[np.flatnonzero(h)], budget, options) for h in halves)
    try:
        results = run_parallel(jobs, n_jobs, progress, desc="half-sample fits")
    except KeyboardInterrupt:
        raise Interrupted(f"stability selection interrupted before its {B} half-sample fits were finished") from None
    freq, mean_sel = {}, {}
    for t in design.terms:
        counts = pd.Series(0.0, index=t.levels)
        sizes = []
        for sel in results:
            chosen = sel.get(t.term.label, [])
            counts.loc[chosen] += 1
            sizes.append(len(chosen))
        freq[t.term.label] = counts / B
        mean_sel[t.term.label] = float(np.mean(sizes))
    return Stability(pd.DataFrame(freq), pd.Series(mean_sel), B)
