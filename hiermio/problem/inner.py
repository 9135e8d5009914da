"""The inner problem: what the support search needs from a model, whatever its loss.

For a support indicator s in [0, 1]^m over the random-effect columns, an inner problem gives

* c(s), the best penalised loss with the columns scaled by s (its perspective form, convex on the
  cube and equal to the fitted loss at binary s), with its gradient dc/ds, which the outer
  approximation's cuts and the lower bounds use;
* the estimates (fixed and cluster effects) and their covariance at a binary s, which the fitted
  model reports.

:class:`hiermio.problem.sufficient.SufficientStats` is the Gaussian ridge inner problem (least squares,
prior weights, offsets). Another loss or constraint (a logistic loss, sign-constrained effects for
tail budgets) is one new class implementing :class:`InnerProblem`; the selection problem, the
heuristics, the lower bounds and the branch-and-cut only call ``evaluate``.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["Evaluation", "InnerProblem", "one_blas_thread", "blas_threads"]

_F = TypeVar("_F", bound=Callable)


# BLAS threads inside a search; None leaves the BLAS as it is (benchmarks/bench_blas.py times both)
SEARCH_BLAS_THREADS: int | None = 1


@functools.lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    # made once (a scan of the loaded libraries costs a millisecond; a limit through it, microseconds)
    return ThreadpoolController()


def blas_threads(limit: int | None):
    """A context in which the BLAS uses at most ``limit`` threads (None: as many as it would).

    >>> from threadpoolctl import threadpool_info
    >>> with blas_threads(1):
    ...     {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    {1}
    """
    return _blas_controller().limit(limits=limit, user_api="blas")


def one_blas_thread(search: _F) -> _F:
    """Run ``search`` with the BLAS (OpenBLAS, MKL) limited to one thread, restored afterwards.

    A search evaluates c thousands of times on small matrices (K blocks of q x q solves, p x p
    systems), where a second BLAS thread costs more in waking and synchronising than it computes
    when the machine is busy: on a loaded 2-core machine (load 4) enumerating the paper-size
    problem took 2.2 ms with one OpenBLAS thread and 14 ms with two; on an idle one the two agree
    (``benchmarks/bench_blas.py`` times searches both ways). The pass over the rows runs outside
    any search and keeps the threads when it has several blocks of rows. Each search
    entry (:func:`hiermio.fitting.api.optimize`, :func:`hiermio.solve.oa.solve`, :func:`hiermio.solve.oa.bound_only`)
    is wrapped once; nested entries cost microseconds.

    >>> from threadpoolctl import threadpool_info
    >>> one_blas_thread(lambda: {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})()
    {1}
    """
    @functools.wraps(search)
    def limited(*args, **kwargs):
        if SEARCH_BLAS_THREADS is None:
            return search(*args, **kwargs)
        with blas_threads(SEARCH_BLAS_THREADS):
            return search(*args, **kwargs)

    return limited  # type: ignore[return-value]


@dataclass(frozen=True)
class Evaluation:
    """c(s), its gradient and the ridge estimates at one support."""

    value: float
    grad: np.ndarray  # (m,) dc/ds_j = -(z_j' r)^2 / mu_j
    beta: np.ndarray  # (p,)
    gamma: np.ndarray  # (m,)
    ztr: np.ndarray  # (m,) z_j' r
    information: np.ndarray = field(repr=False)  # (p, p) profiled information on Q's coefficients
    beta_map: np.ndarray = field(repr=False)  # (p, p) from Q's coefficients to X's

    @cached_property
    def fixed_cov_unscaled(self) -> np.ndarray:
        """Cov(beta) / sigma^2 = (X'(I + Z_S Z_S'/mu)^{-1} X)^{-1}, formed without inverting X'X."""
        if self.beta_map.size == 0:
            return np.zeros((0, 0))
        return self.beta_map @ np.linalg.solve(self.information, self.beta_map.T)


class InnerProblem(ABC):
    """c(s) and its gradient over the random-effect columns, and the estimates at a support.

    The selection coordinates s are usually the design's random-effect columns. An inner problem
    may split a column into several coordinates (sign-constrained effects: one coordinate per
    sign); ``source`` then maps each coordinate to its design column, while ``Evaluation.gamma``
    and ``Evaluation.ztr`` stay per design column and ``Evaluation.grad`` is per coordinate.
    """

    m: int  # selection coordinates
    p: int  # fixed-effect columns
    mu: np.ndarray  # (m,) ridge weight of each coordinate

    @property
    def source(self) -> np.ndarray:
        """(m,) the design column of each selection coordinate."""
        return np.arange(self.m)

    @property
    def column_mu(self) -> np.ndarray:
        """The ridge weight of each design column (the penalty is sum of column_mu * gamma^2)."""
        return self.mu

    @abstractmethod
    def evaluate(self, s: np.ndarray) -> Evaluation:
        """c(s), its gradient and the estimates at s in [0, 1]^m."""

    @abstractmethod
    def with_mu(self, mu: np.ndarray) -> "InnerProblem":
        """The same problem under other ridge weights (the refit on a selected support uses tiny ones)."""

    @property
    @abstractmethod
    def exact_fit(self) -> bool:
        """True when the fixed part alone already fits perfectly (every support has c = 0)."""
