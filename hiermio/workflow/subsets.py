"""Fits on parts of data read in partitions: cross-validation folds and stability half-samples, all
from one pass over the rows.

With the rows in memory, a fold's fit is a fit on a smaller frame. Read in partitions, the rows of
every part of every split are summed in one pass (:func:`hiermio.problem.sufficient.split_cross_products`):
a fold's training sums are the merge of the other folds' sums, its validation error is a
quadratic form in its own sums, and a half-sample's fit needs nothing else. So cross-validation
and stability selection read the data once after the design's passes, whatever the number of
folds or fits, and a dask cluster ships only sums.

The rows are dealt within each partition: every cluster's rows in the partition are shuffled and
dealt round-robin (:func:`hiermio.data.splits.within_cluster_folds`), seeded by ``random_state`` and
the partition's content. The same partitions give the same folds in any order, on any scheduler;
other partitionings of the same rows give other (equally valid) folds.

>>> import pandas as pd
>>> from hiermio.formula.streaming import learn_design
>>> chunks = [pd.DataFrame({"y": [1., 2, 3, 4], "g": list("aabb")}), pd.DataFrame({"y": [5., 6], "g": list("ab")})]
>>> d = learn_design("y ~ 1 + (1 | g)", chunks)
>>> folds = partition_folds(d.block_of(chunks[0]), 2, random_state=0)  # rows a, a, b, b
>>> sorted(folds[:2].tolist()), sorted(folds[2:].tolist())  # each cluster's rows: one in each fold
([0, 1], [0, 1])
"""

from __future__ import annotations

import zlib

import numpy as np

from ..fitting.api import problem_from_cross_products
from ..core.control import FitControl
from ..formula.design import Design, RowBlock
from ..core.exceptions import DataError
from ..formula.modelmatrix import aliased_columns
from ..fitting.results import MIOFit
from ..problem.selection import Budget, SelectionProblem
from ..data.splits import within_cluster_folds
from ..formula.streaming import finish_fixed_columns
from ..problem.sufficient import CrossProducts

__all__ = ["partition_folds", "whole_data", "part_problem", "check_estimable", "validation_mse"]


def _partition_key(block: RowBlock) -> int:
    """A number that only this partition's rows give (its response and first grouping factor)."""
    key = zlib.crc32(np.ascontiguousarray(block.y).tobytes())
    return zlib.crc32(np.ascontiguousarray(block.codes[0]).tobytes(), key) if block.codes else key


def partition_folds(block: RowBlock, folds: int, random_state: int = 0, split: int = 0) -> np.ndarray:
    """Part of every row of one partition: each cluster's rows shuffled and dealt round-robin over
    ``folds`` parts; ``split`` numbers independent splits (stability's pairs of halves)."""
    return within_cluster_folds(block.codes[0], folds, [int(random_state), int(split), _partition_key(block)])


def whole_data(design: Design, splits: list[list[CrossProducts]]
               ) -> tuple[Design, list[list[CrossProducts]], CrossProducts]:
    """The sums of all rows (the parts of the first split merged) decide, as a fit's own pass
    would, which fixed columns are aliased (dropped, with lme4's message) and the rows per level;
    every part of every split is then reduced to the kept columns. Returns the finished design,
    the splits' parts and the whole's sums."""
    full = splits[0][0]
    for cp in splits[0][1:]:
        full = full.merge(cp)
    design, full = finish_fixed_columns(design, full)
    return design, [[cp.fixed_columns(design._fixed_keep) for cp in parts] for parts in splits], full


def part_problem(design: Design, cp: CrossProducts, budget: Budget, control: FitControl,
                 description: str) -> tuple[SelectionProblem, np.ndarray]:
    """The problem of the rows ``cp`` sums (a fold's training rows, a half-sample), as a fit on
    those rows alone would pose it: levels without rows are left out, fixed columns aliased in
    these rows dropped. Returns it and the design's random-effect columns it keeps.

    >>> import pandas as pd
    >>> from hiermio.problem.sufficient import split_cross_products
    >>> from hiermio.formula.streaming import learn_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 6, 5], "g": list("aabbcc")})
    >>> d = learn_design("y ~ 1 + (1 | g)", [df])
    >>> split = split_cross_products(d, lambda b: np.array([[0, 0, 0, 0, 1, 1]]), 2, "two parts")
    >>> d, (parts,), _ = whole_data(d, split)
    >>> problem, columns = part_problem(d, parts[0], 1, FitControl(), "rows of a and b")
    >>> list(problem.design.terms[0].levels), columns.tolist()
    (['a', 'b'], [0, 1])
    """
    sub, columns = design.restricted(cp.sizes, description)
    sizes = [t.sizes for t in sub.terms]
    return problem_from_cross_products(sub, cp.restricted(columns, sizes), budget, control), columns


def check_estimable(train: CrossProducts, valid: CrossProducts, names: tuple[str, ...], what: str) -> None:
    """Refuse validation rows whose fixed part the training rows cannot estimate.

    A fixed column that is a linear combination of others in the training rows (a factor level
    with no training row, most often) but not in the validation rows makes any prediction of them
    arbitrary; with the rows in memory, predicting an unseen factor level is refused the same way.

    >>> import pandas as pd
    >>> from hiermio.problem.sufficient import split_cross_products
    >>> from hiermio.formula.streaming import learn_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 6, 5], "f": list("uuuuuv"), "g": list("ababab")})
    >>> d = learn_design("y ~ f + (1 | g)", [df])
    >>> d, (parts,), _ = whole_data(d, split_cross_products(d, lambda b: np.array([[0, 0, 0, 0, 0, 1]]), 2, "x"))
    >>> check_estimable(parts[0], parts[1], d.fixed_names, "fold 1")
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.DataError: fold 1: the fixed-effect column 'fv' is not estimable from the training rows ...
    """
    P = train.P
    Rt, Rv = train.R[:, :P], valid.R[:, :P]
    dropped = aliased_columns(Rt)
    kept = [j for j in range(P) if j not in dropped]
    scale = np.linalg.norm(Rv)
    for j in dropped:
        c = np.linalg.lstsq(Rt[:, kept], Rt[:, j], rcond=None)[0] if kept else np.zeros(0)
        d = np.zeros(P)
        d[j] = 1.0
        d[kept] -= c
        if np.linalg.norm(Rv @ d) > 1e-7 * scale * np.linalg.norm(d):
            raise DataError(f"{what}: the fixed-effect column {names[j]!r} is not estimable from the training rows "
                            "(e.g. a factor level all of whose rows fell in the validation rows), so the validation "
                            "rows cannot be predicted; use fewer folds, or merge rare levels")


def validation_mse(fit: MIOFit, columns: np.ndarray, valid: CrossProducts, names: tuple[str, ...]) -> float:
    """Mean squared error of ``fit`` (a fit on some parts) on the rows ``valid`` sums (unweighted,
    on the whole data's columns ``names``), levels the fit left out predicted at zero (population).

    The residual y - X beta - Z gamma is, in the shifted columns the sums hold, y_s - X_s b - Z gamma
    with b = beta except for the intercept, which takes the shifts; its square sum is
    ||R [-b; 1]||^2 - 2 gamma'(Z'y_s - Z'X_s b) + gamma' Z'Z gamma.

    >>> import pandas as pd
    >>> from hiermio.fitting.api import make_fit, optimize
    >>> from hiermio.problem.sufficient import split_cross_products
    >>> from hiermio.formula.streaming import learn_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 5, 6, 4, 2, 7], "x": [0., 1, 2, 0, 1, 2, 0, 1], "g": list("aaaabbbb")})
    >>> d = learn_design("y ~ x + (1 | g)", [df])
    >>> half = np.array([[0, 1, 0, 1, 0, 1, 0, 1]])
    >>> d, (parts,), _ = whole_data(d, split_cross_products(d, lambda b: half, 2, "halves"))
    >>> problem, columns = part_problem(d, parts[0], 1, FitControl(), "first half")
    >>> fit = make_fit(problem, optimize(problem))
    >>> held = df[half[0] == 1]   # the truth: the fit's prediction of the other half's rows
    >>> pred = fit.beta[0] + fit.beta[1] * held.x + fit.gamma[pd.Index(["a", "b"]).get_indexer(held.g)]
    >>> bool(np.isclose(validation_mse(fit, columns, parts[1], d.fixed_names), np.mean((held.y - pred) ** 2)))
    True
    """
    beta = np.zeros(valid.P)
    beta[[names.index(n) for n in fit.design.fixed_names]] = fit.beta
    gamma = np.zeros(valid.m)
    gamma[columns] = fit.gamma
    if valid.intercept is not None:
        beta[valid.intercept] -= (valid.y_shift - valid.shift @ beta) / valid.const[valid.intercept]
    v = valid.R @ np.append(-beta, 1.0)
    sse = v @ v - 2 * gamma @ (valid.Zty - valid.ZtX @ beta) + gamma @ (valid.ZtZ @ gamma)
    return max(float(sse), 0.0) / valid.n
