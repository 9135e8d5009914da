"""What a search reports: its progress while it runs, and the certificate of the support it returns.

>>> c = Certificate("optimal", primal=10.0, dual=9.9)
>>> round(c.gap, 3)
0.01
"""

from __future__ import annotations

from dataclasses import dataclass

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
    solver: str = "not recorded"  # the search that ran; every path of hiermio.solve.oa names itself
    null: float = float("nan")  # c at the empty support: the fit with no cluster effect at all

    def __post_init__(self) -> None:  # plain floats whichever solver made them (numpy scalars print oddly)
        self.primal, self.dual, self.null, self.time = map(float, (self.primal, self.dual, self.null, self.time))

    @property
    def signal_gap(self) -> float:
        """The gap as a share of what the cluster effects explain, (primal - dual) / (c(0) - primal).

        A 0.4 % gap in the objective can be a large share of the signal when the cluster effects
        explain little of it; NaN when c(0) is unknown, 0 when nothing is left to prove.

        >>> round(Certificate("time_limit", primal=100.0, dual=99.6, null=110.0).signal_gap, 3)
        0.04
        """
        if self.null != self.null:  # NaN
            return float("nan")
        slack = max(0.0, self.primal - self.dual)
        if slack == 0:
            return 0.0
        explained = self.null - self.primal
        return slack / explained if explained > 0 else float("inf")

    @property
    def gap(self) -> float:
        """Relative gap (primal - dual) / |primal|; 0 when optimality is proven."""
        if self.primal == 0:
            return 0.0 if self.dual >= 0 else float("inf")
        return max(0.0, (self.primal - self.dual) / abs(self.primal))

    def describe(self) -> str:
        signal = "" if self.signal_gap != self.signal_gap else \
            f" ({100 * self.signal_gap:.3g}% of what the cluster effects explain)"
        return (
            f"{self.status}: objective {self.primal:.6g}, bound {self.dual:.6g}, gap {100 * self.gap:.3g}%{signal}, "
            f"{self.nodes} nodes, {self.cuts} cuts, {self.time:.2f} s"
        )
