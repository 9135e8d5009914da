"""A sweep over budgets on one set of sufficient statistics, each budget warm-started from the last.

>>> import hiermio as hm
>>> p = hm.path("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budgets=[0, 2, 4])
>>> p.table.index.tolist(), bool((p.table.objective.diff().dropna() <= 1e-9).all())
([0, 2, 4], True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ..fitting.api import build_problem, make_fit, optimize
from ..core.control import FitControl, check_integer, check_loop_options
from ..core.exceptions import BudgetError, HierMIOError, HierMIOWarning, Interrupted
from ..fitting.newclusters import check_rule
from ..core.parallel import with_progress
from ..fitting.results import MIOFit
from ..problem.selection import SelectionProblem

__all__ = ["path", "sweep", "Path", "check_budget_list"]


@dataclass
class Path:
    """Fits along the budgets, with a table of their certificates and (if given) validation error."""

    table: pd.DataFrame
    fits: dict[int, MIOFit] = field(repr=False)
    notes: list[str] = field(default_factory=list, repr=False)  # what the gaps warned

    def entering(self) -> pd.DataFrame:
        """Per budget, the levels whose effect became nonzero (``entered``) or zero (``left``)
        since the previous budget, labelled ``level`` (``term: level`` when there are several terms).

        >>> import hiermio as hm
        >>> p = hm.path("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budgets=[0, 1, 2])
        >>> [len(v) for v in p.entering().entered]
        [0, 1, 1]
        """
        rows, before = [], set()
        for b, f in self.fits.items():
            sel = f.selected
            now = {(t if len(sel) > 1 else "", str(v)) for t, levels in sel.items() for v in levels}
            label = [f"{t}: {v}" if t else v for t, v in sorted(now - before)]
            gone = [f"{t}: {v}" if t else v for t, v in sorted(before - now)]
            rows.append({"budget": b, "entered": label, "left": gone})
            before = now
        return pd.DataFrame(rows).set_index("budget")

    def plot(self):
        """The objective with its proven lower bound, the validation error (when computed), and the
        nonzero effects against budget, each point labelled with the levels that entered there.
        A screened path (``certify=False``) says so: its bounds are the relaxation's."""
        import matplotlib.pyplot as plt

        t = self.table
        has_val = "validation_mse" in t
        fig, axes = plt.subplots(1, 3 if has_val else 2, figsize=(13 if has_val else 9, 3.9))
        screened = bool((t.status == "relaxation_bound").any())
        axes[0].plot(t.index, t.objective, marker="o", label="objective (best support)")
        axes[0].plot(t.index, t.bound, marker="v", ls="--", color="C3",
                     label="lower bound (relaxation only)" if screened else "lower bound (proven)")
        axes[0].legend(fontsize=8)
        axes[0].set_title("objective and bound" + (": screened, not certified" if screened else ": certified"))
        if has_val:
            axes[1].plot(t.index, t.validation_mse, marker="o", color="C1")
            best = t.validation_mse.idxmin()
            axes[1].axvline(best, ls=":", color="grey")
            axes[1].set_title(f"validation MSE (lowest at {best})")
        ax = axes[-1]
        ax.plot(t.index, t.nonzero, marker="o", color="C2")
        ax.set_title("nonzero effects; levels entering")
        ax.margins(x=0.12)
        enter = self.entering()
        for b, row in enter.iterrows():
            if row.entered:
                text = "+" + ", ".join(row.entered[:3]) + ("..." if len(row.entered) > 3 else "")
                if row.left:
                    text += "  -" + ", ".join(row.left[:2]) + ("..." if len(row.left) > 2 else "")
                ax.annotate(text, (b, t.nonzero[b]), textcoords="offset points", xytext=(4, -10), fontsize=7,
                            rotation=-30)
        for a in axes:
            a.set_xlabel("budget")
        fig.tight_layout()
        return fig


def path(
    formula: str,
    data: pd.DataFrame,
    budgets: Iterable[int],
    *,
    validation: pd.DataFrame | None = None,
    new_levels: str = "population",
    cluster_features: Sequence[str] | None = None,
    progress: bool | None = None,
    weights: Any = None,
    offset: Any = None,
    **options: Any,
) -> Path:
    """Fit every budget in ``budgets`` (whole numbers, one for every group), in increasing order.

    The design and sufficient statistics are built once; each budget's heuristic start grows the
    previous budget's support. With ``validation`` data, each fit's validation MSE is tabulated;
    its unseen clusters are predicted by ``new_levels`` (and ``cluster_features`` for "features").
    A budget above a group's number of levels is fitted at that number, with a warning.
    ``options`` are those of :func:`hiermio.fit` (``ridge``, ``selection``, ``time_limit``,
    ``gap``, ``seed``, ``certify``...), validated before the first fit.

    ``certify=False`` skips the branch-and-bound: each budget keeps its heuristic support, with
    the gap proven by the continuous relaxation alone (status "relaxation_bound" unless that
    already meets ``gap``). Budgets far from the true sparsity are near-ties among many supports
    and can take a search far longer than the budget that matters, so a screening path followed by
    one certified :func:`hiermio.fit` at the chosen budget is the fast route (``bench_path.py``).

    Ctrl-C stops the sweep: :class:`hiermio.Interrupted` is raised, its ``result`` the
    :class:`Path` of the budgets finished.
    """
    control = FitControl.from_options(options, "path")
    check_loop_options(progress)
    budgets = check_budget_list(budgets, "path")
    check_rule(new_levels)
    problem = build_problem(formula, data, 0, control, weights=weights, offset=offset)
    if not problem.design.terms:
        raise HierMIOError("path sweeps the budget of random terms; the formula has none")
    validate = None
    if validation is not None:
        y_val = problem.design.response_for(validation)

        def validate(res: MIOFit) -> float:
            pred = res.predict(validation, new_levels=new_levels, cluster_features=cluster_features)
            return float(np.mean((y_val - pred.to_numpy()) ** 2))

    out = sweep(problem, budgets, control, validate, progress)
    for msg in out.notes:
        warnings.warn(msg, HierMIOWarning, stacklevel=2)
    return out


def sweep(problem: SelectionProblem, budgets: list[int], control: FitControl,
          validate: Callable[[MIOFit], float] | None = None, progress: bool | None = None) -> Path:
    """The budgets in increasing order on one problem, each warm-started from the last; with
    ``validate`` (a fit's validation MSE), a ``validation_mse`` column. The warnings about gaps
    are returned in ``Path.notes``, for the caller to give or keep.

    >>> import hiermio as hm
    >>> from hiermio.fitting.api import build_problem
    >>> p = sweep(build_problem("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), 0), [0, 2],
    ...           FitControl())
    >>> p.table.nonzero.tolist()
    [0, 2]
    """
    design = problem.design
    _warn_capped(design, budgets, control.selection)
    iterator = with_progress(budgets, progress, "budget path", unit="budget")
    fits, rows, warm, notes = {}, [], None, []
    try:
        for b in iterator:
            step = problem.with_budget(SelectionProblem.capped_budget(design, b, control.selection))
            res = make_fit(step, optimize(step, control, warm=warm), control)
            c = res.certificate
            if c.status == "interrupted":
                raise KeyboardInterrupt
            warm = res.support
            fits[b] = res
            if res.solver_warnings:
                notes.append((b, c.gap, res.solver_warnings))
            row = {"budget": b, "objective": c.primal, "bound": c.dual, "gap": c.gap, "status": c.status,
                   "nonzero": res.n_nonzero, "time_s": res.timings["total"]}
            if validate is not None:
                row["validation_mse"] = validate(res)
            rows.append(row)
    except KeyboardInterrupt:
        done = _table(rows)
        raise Interrupted(f"path interrupted: budgets {list(done.index)} of {budgets} were finished; their fits "
                          "are in this exception's .result", Path(done, fits) if rows else None) from None
    return Path(_table(rows), fits, _summarise(notes, control))


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=None if rows else ["budget"]).set_index("budget")


def _summarise(notes: list[tuple[int, float, list[str]]], control: FitControl) -> list[str]:
    """One warning for the budgets whose gap stayed above the requested one."""
    if not notes:
        return []
    budgets = [b for b, _, _ in notes]
    worst = max(g for _, g, _ in notes)
    if not control.certify:
        return [f"certify=False: budgets {budgets} keep gaps up to {100 * worst:.3g}% proven by the relaxation "
                "alone (a screening path); certify the budget you choose with hiermio.fit"]
    if len(notes) == 1:
        return [f"budget {budgets[0]}: {notes[0][2][0]}"]
    return [f"budgets {budgets} ended with gaps up to {100 * worst:.3g}%, above the requested "
            f"{100 * control.gap:.3g}%: {notes[0][2][0].split(' with a proven gap')[0]} (first of them); "
            "their supports may not be optimal"]


def check_budget_list(budgets: Any, caller: str) -> list[int]:
    """Sorted distinct whole-number budgets, or an error naming the bad entry.

    >>> check_budget_list([3, 0, 3.0], "path")
    [0, 3]
    """
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Iterable):
        raise BudgetError(f"{caller} needs budgets as a list of whole numbers (e.g. range(0, 11)), got {budgets!r}")
    out = sorted({check_integer(b, f"each budget of {caller}", 0) for b in budgets})
    if not out:
        raise BudgetError(f"{caller} needs at least one budget")
    return out


def _warn_capped(design, budgets: list[int], selection: str) -> None:
    sizes = SelectionProblem.group_sizes_of(design, selection)
    over = {name: [b for b in budgets if b > size] for name, size in sizes.items()}
    for name, bs in over.items():
        if bs:
            warnings.warn(f"budget(s) {bs} exceed the {sizes[name]} units of {name}: fitted at {sizes[name]}",
                          HierMIOWarning, stacklevel=4)
