"""What a search reports: its progress while it runs, and the certificate of the support it returns.

>>> c = Certificate("optimal", primal=10.0, dual=9.9)
>>> round(c.gap, 3)
0.01
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyscipopt import __version__ as pyscipopt_version

__all__ = ["Certificate", "SolverProgress"]


@dataclass
class SolverProgress:
    """What a progress callback receives, at most twice a second."""

    elapsed: float
    primal: float
    dual: float
    gap: float
    nodes: int
    cuts: int


@dataclass
class Certificate:
    """How close to optimal the returned support is proven to be."""

    status: str  # optimal | gap_limit | time_limit | node_limit | interrupted | closed_form | relaxation_bound
    # | enumerated
    primal: float  # c at the returned support (original scale)
    dual: float  # proven lower bound on the optimum (original scale)
    nodes: int = 0
    cuts: int = 0
    evaluations: int = 0
    time: float = 0.0
    solver: str = field(default_factory=lambda: f"SCIP via pyscipopt {pyscipopt_version}")

    @property
    def gap(self) -> float:
        """Relative gap (primal - dual) / |primal|; 0 when optimality is proven."""
        if self.primal == 0:
            return 0.0 if self.dual >= 0 else float("inf")
        return max(0.0, (self.primal - self.dual) / abs(self.primal))

    def describe(self) -> str:
        return (
            f"{self.status}: objective {self.primal:.6g}, bound {self.dual:.6g}, gap {100 * self.gap:.3g}%, "
            f"{self.nodes} nodes, {self.cuts} cuts, {self.time:.2f} s"
        )
