"""A sweep over budgets on one set of sufficient statistics, each budget warm-started from the last.

>>> import hiermio as hm
>>> p = hm.path("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budgets=[0, 2, 4])
>>> p.table.index.tolist(), bool((p.table.objective.diff().dropna() <= 1e-9).all())
([0, 2, 4], True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from .api import _check_options, default_mu, fit_problem
from .design import build_design
from .exceptions import HierMIOError
from .oa import SolverOptions
from .parallel import with_progress
from .results import MIOFit
from .selection import SelectionProblem
from .sufficient import SufficientStats

__all__ = ["path", "Path"]


@dataclass
class Path:
    """Fits along the budgets, with a table of their certificates and (if given) validation error."""

    table: pd.DataFrame
    fits: dict[int, MIOFit] = field(repr=False)

    def plot(self):
        """Objective, validation error (when computed) and nonzero effects against budget."""
        import matplotlib.pyplot as plt

        t = self.table
        has_val = "validation_mse" in t
        fig, axes = plt.subplots(1, 3 if has_val else 2, figsize=(12 if has_val else 8, 3.6))
        axes[0].plot(t.index, t.objective, marker="o")
        axes[0].set_title("objective (certified)")
        if has_val:
            axes[1].plot(t.index, t.validation_mse, marker="o", color="C1")
            axes[1].set_title("validation MSE")
        axes[-1].plot(t.index, t.nonzero, marker="o", color="C2")
        axes[-1].set_title("nonzero cluster effects")
        for ax in axes:
            ax.set_xlabel("budget")
        fig.tight_layout()
        return fig


def path(
    formula: str,
    data: pd.DataFrame,
    budgets: Iterable[int],
    *,
    validation: pd.DataFrame | None = None,
    ridge: float = 0.1,
    selection: Literal["column", "cluster"] = "column",
    time_limit: float = 60.0,
    gap: float = 1e-4,
    seed: int = 0,
    new_levels: str = "population",
    cluster_features: Sequence[str] | None = None,
    certify: bool = True,
    progress: bool | None = None,
    weights: Any = None,
    offset: Any = None,
) -> Path:
    """Fit every budget in ``budgets`` (one int for every group), in increasing order.

    The design and sufficient statistics are built once; each budget's heuristic start grows the
    previous budget's support. With ``validation`` data, each fit's validation MSE is tabulated;
    its unseen clusters are predicted by ``new_levels`` (and ``cluster_features`` for "features").

    ``certify=False`` skips the branch-and-bound: each budget keeps its heuristic support, with
    the gap proven by the continuous relaxation alone (status "relaxation_bound" unless that
    already meets ``gap``). Budgets far from the true sparsity are near-ties among many supports
    and can take a search far longer than the budget that matters, so a screening path followed by
    one certified :func:`hiermio.fit` at the chosen budget is the fast route (``bench_path.py``).
    """
    _check_options(ridge, time_limit, gap)
    budgets = sorted(set(int(b) for b in budgets))
    if not budgets:
        raise HierMIOError("path needs at least one budget")
    design = build_design(formula, data, weights=weights, offset=offset)
    mu = default_mu(design, ridge)
    stats = SufficientStats.from_design(design, mu)
    opts = SolverOptions(time_limit=time_limit, gap=gap, seed=seed)
    iterator = with_progress(budgets, progress, "budget path", unit="budget")
    fits, rows, warm = {}, [], None
    y_val = design.response_for(validation) if validation is not None else None
    for b in iterator:
        t0 = time.perf_counter()
        capped = SelectionProblem.capped_budget(design, b, selection)
        problem = SelectionProblem.build(design, capped, mu, selection, stats=stats)
        res = fit_problem(design, problem, ridge, opts, warm=warm, t0=t0, certify=certify)
        warm = res.support
        fits[b] = res
        c = res.certificate
        row = {"budget": b, "objective": c.primal, "bound": c.dual, "gap": c.gap, "status": c.status,
               "nonzero": res.n_nonzero, "time_s": res.timings["total"]}
        if validation is not None:
            pred = res.predict(validation, new_levels=new_levels, cluster_features=cluster_features)
            row["validation_mse"] = float(np.mean((y_val - pred.to_numpy()) ** 2))
        rows.append(row)
    return Path(pd.DataFrame(rows).set_index("budget"), fits)
