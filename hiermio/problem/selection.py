"""The combinatorial problem: which random-effect units may be nonzero, under which budgets.

A *unit* is what one binary switches on. With ``selection="column"`` every random-effect column
(term x level x coefficient) is a unit and each random term has its own budget; with
``selection="cluster"`` a unit is one level of a grouping factor (its intercept and slopes, in all
terms on that factor, enter together) and each grouping factor has one budget.

>>> import numpy as np, pandas as pd
>>> from hiermio.formula.design import build_design
>>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "z": [0., 1, 0, 1, 0, 1], "g": list("aabbcc")})
>>> d = build_design("y ~ 1 + (1 + z | g)", df)
>>> sel = SelectionProblem.build(d, budget=1, mu=np.ones(6), selection="cluster")
>>> sel.n_units, sel.group_names, sel.budgets.tolist()
(3, ['g'], [1])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from numbers import Integral
from typing import Literal, Mapping, Union

import numpy as np

from ..formula.design import Design
from ..core.exceptions import BudgetError, HierMIOWarning
from .inner import Evaluation, InnerProblem
from .sufficient import SufficientStats
from .tails import SignConstrainedStats

__all__ = ["Budget", "BudgetRecord", "SelectionProblem"]

Budget = Union[int, Mapping[str, Union[int, tuple[int, int]]]]
BELOW, ABOVE = "below", "above"  # the two groups of a term with a tail budget


@dataclass(frozen=True)
class BudgetRecord:
    """What a fitted model keeps of its selection problem: which groups had which budget of how many units."""

    selection: str
    groups: tuple[str, ...]
    budgets: tuple[int, ...]
    sizes: tuple[int, ...]
    tails: tuple[str, ...] = ()  # terms with a (below, above) budget; their groups are "<term> below/above"

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.groups, self.budgets))

    def as_budget(self) -> dict[str, int | tuple[int, int]]:
        """The budget as ``fit`` takes it: an int per group, a (below, above) pair per tailed term.

        >>> BudgetRecord("column", ("(1 | g) below", "(1 | g) above"), (1, 2), (5, 5), ("(1 | g)",)).as_budget()
        {'(1 | g)': (1, 2)}
        """
        given = self.as_dict()
        out: dict[str, int | tuple[int, int]] = {}
        for name, b in given.items():
            term = next((t for t in self.tails if name in (f"{t} {BELOW}", f"{t} {ABOVE}")), None)
            if term is None:
                out[name] = b
            elif term not in out:
                out[term] = (given[f"{term} {BELOW}"], given[f"{term} {ABOVE}"])
        return out


@dataclass
class SelectionProblem:
    """Units, budget groups and the evaluator of c for unit-level supports."""

    stats: InnerProblem  # the Gaussian ridge (SufficientStats) or any other inner problem
    unit_of_col: np.ndarray  # (m,) unit of each random-effect column
    group_of_unit: np.ndarray  # (U,) budget group of each unit
    group_names: list[str]
    budgets: np.ndarray  # (n_groups,) the L0 budget of each group
    selection: str = "column"
    n_evaluations: int = 0  # evaluations of c so far, for the solver's report
    design: Design | None = field(default=None, repr=False)  # what the units and budgets refer to
    tails: tuple[str, ...] = ()  # terms whose effects are split by sign, with a (below, above) budget
    notes: tuple[str, ...] = ()  # budgets capped at their group's size, for the fit's warnings

    @property
    def n_units(self) -> int:
        return len(self.group_of_unit)

    def budget_record(self) -> BudgetRecord:
        return BudgetRecord(self.selection, tuple(self.group_names), tuple(int(b) for b in self.budgets),
                            tuple(int(n) for n in self.group_sizes), self.tails)

    @property
    def group_sizes(self) -> np.ndarray:
        return np.bincount(self.group_of_unit, minlength=len(self.group_names))

    @classmethod
    def build(
        cls,
        design: Design,
        budget: Budget,
        mu: np.ndarray,
        selection: Literal["column", "cluster"] = "column",
        stats: InnerProblem | None = None,
    ) -> "SelectionProblem":
        """Units and budgets for ``design``; ``budget`` is an int (every group) or a dict by group.

        A dict value ``(below, above)`` is a tail budget for that term (``selection="column"``, a
        term with one coefficient per level): at most ``below`` levels with a negative effect and
        ``above`` with a positive one (:mod:`hiermio.problem.tails`). A budget above its group's number of
        units allows every unit to be nonzero: it is capped there, with a :class:`HierMIOWarning`
        (kept in ``notes``), so a budget meets fewer levels (a fold, a half-sample) as it meets all.
        """
        if selection not in ("column", "cluster"):
            raise BudgetError(f"selection must be 'column' or 'cluster', got {selection!r}")
        notes: list[str] = []
        per_group = _group_budgets(budget, design, selection, notes)
        for msg in notes:
            warnings.warn(msg, HierMIOWarning, stacklevel=4)  # from fit(), through build_problem
        tailed = [i for i, b in enumerate(per_group) if isinstance(b, tuple)]
        unit_of_col, group_of_unit, names = [], [], []
        if selection == "column":
            signed = np.concatenate([off + np.arange(design.terms[i].n_columns) for i, off in
                                     enumerate(design.term_offsets()) if i in tailed] or [np.zeros(0, int)])
            source, sign = SignConstrainedStats.layout(design.n_columns if design.terms else 0, signed)
            term_of_col = np.repeat(np.arange(len(design.terms)), [t.n_columns for t in design.terms])
            group_index = {}
            for i, t in enumerate(design.terms):
                for side, suffix in ([(-1, f" {BELOW}"), (1, f" {ABOVE}")] if i in tailed else [(0, "")]):
                    group_index[(i, side)] = len(names)
                    names.append(t.term.label + suffix)
            group_of_unit = np.array([group_index[(term_of_col[j], sg)] for j, sg in zip(source, sign)], dtype=int)
            unit_of_col_a = np.arange(len(source))
        else:
            factors = list(dict.fromkeys(t.term.group for t in design.terms))
            first_unit = {}
            n_units = 0
            for gi, f in enumerate(factors):
                K = next(t.n_levels for t in design.terms if t.term.group == f)
                first_unit[f] = n_units
                group_of_unit.append(np.full(K, gi))
                names.append(f)
                n_units += K
            for t in design.terms:
                unit_of_col.append(first_unit[t.term.group] + np.repeat(np.arange(t.n_levels), t.q))
            unit_of_col_a = np.concatenate(unit_of_col) if unit_of_col else np.zeros(0, int)
            group_of_unit = np.concatenate(group_of_unit) if group_of_unit else np.zeros(0, int)
        budgets = _flat(per_group)
        # the budget is checked before the one pass over the rows
        stats = stats() if callable(stats) else stats if stats is not None else SufficientStats.from_design(design, mu)
        if tailed:
            stats = SignConstrainedStats(stats, signed)
        return cls(stats, unit_of_col_a.astype(int), group_of_unit.astype(int), names, budgets, selection,
                   design=design, tails=tuple(design.terms[i].term.label for i in tailed), notes=tuple(notes))

    def with_budget(self, budget: Budget) -> "SelectionProblem":
        """The same units and inner problem under another budget (a path's next step); a budget
        above a group's size is capped as in :meth:`build`, the note kept for the caller to give.

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "g": list("aabbcc")})
        >>> sel = SelectionProblem.build(build_design("y ~ 1 + (1 | g)", df), 1, np.ones(3))
        >>> sel.with_budget(2).budgets.tolist(), sel.with_budget(2).stats is sel.stats
        ([2], True)
        """
        notes: list[str] = []
        per_group = _group_budgets(budget, self.design, self.selection, notes)
        tails = tuple(t.term.label for t, b in zip(self.design.terms, per_group) if isinstance(b, tuple))
        if tails != self.tails:
            raise BudgetError(f"this problem has tail budgets on {list(self.tails) or 'no term'}; another budget "
                              f"must give (below, above) pairs for exactly those terms, got {budget!r}")
        budgets = _flat(per_group)
        return replace(self, budgets=budgets, n_evaluations=0, notes=tuple(notes))

    @staticmethod
    def group_sizes_of(design: Design, selection: str = "column") -> dict[str, int]:
        """Units per budget group: columns per random term, or levels per grouping factor.

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> d = build_design("y ~ 1 + (1 + x | g)", pd.DataFrame({"y": [1., 2, 3], "x": [0., 1, 2], "g": [0, 1, 1]}))
        >>> SelectionProblem.group_sizes_of(d), SelectionProblem.group_sizes_of(d, "cluster")
        ({'(1 + x | g)': 4}, {'g': 2})
        """
        if selection == "cluster":
            return {t.term.group: t.n_levels for t in design.terms}
        return {t.term.label: t.n_columns for t in design.terms}

    @classmethod
    def check_budget(cls, design: Design, budget: Budget, selection: str = "column") -> None:
        """Raise the error :meth:`build` would for ``budget``, without touching the rows (a budget
        above a group's size is no error: the fit caps it and warns)."""
        _group_budgets(budget, design, selection, [])

    @classmethod
    def capped_budget(cls, design: Design, budget: int, selection: str = "column") -> dict[str, int]:
        """``budget`` for every group, capped at the group's size (for sweeps and folds).

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1., 2, 3], "g": [0, 1, 1]}))
        >>> SelectionProblem.capped_budget(d, 5)
        {'(1 | g)': 2}
        """
        return {k: min(int(budget), n) for k, n in cls.group_sizes_of(design, selection).items()}

    # ------------------------------------------------------------------ evaluation
    def columns(self, s_unit: np.ndarray) -> np.ndarray:
        """Column-level indicator from a unit-level one."""
        return np.asarray(s_unit, dtype=float)[self.unit_of_col]

    def units_of_columns(self, cols: np.ndarray) -> np.ndarray:
        """The units that switch on any of the design columns ``cols`` (both sides of a tailed column).

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1., 2, 3, 5], "g": [0, 0, 1, 1]}))
        >>> SelectionProblem.build(d, {"(1 | g)": (1, 1)}, np.ones(2)).units_of_columns([1]).tolist()
        [2, 3]
        """
        return np.unique(self.unit_of_col[np.isin(self.stats.source, cols)])

    def unit_grad(self, ev: Evaluation) -> np.ndarray:
        return np.bincount(self.unit_of_col, weights=ev.grad, minlength=self.n_units)

    def evaluate(self, s_unit: np.ndarray) -> tuple[Evaluation, np.ndarray]:
        """c at a unit-level support, and its gradient per unit."""
        self.n_evaluations += 1
        ev = self.stats.evaluate(self.columns(s_unit))
        return ev, self.unit_grad(ev)

    def value(self, s_unit: np.ndarray) -> float:
        return self.evaluate(s_unit)[0].value

    def is_feasible(self, s_unit: np.ndarray) -> bool:
        counts = np.bincount(self.group_of_unit, weights=np.asarray(s_unit, float), minlength=len(self.group_names))
        return bool(np.all(counts <= self.budgets + 1e-9))

    def top_within_budget(self, score: np.ndarray) -> np.ndarray:
        """The binary support that takes, in each group, the ``budget`` units of highest score."""
        s = np.zeros(self.n_units)
        for g, lam in enumerate(self.budgets):
            idx = np.flatnonzero(self.group_of_unit == g)
            if lam > 0:
                s[idx[np.argsort(-score[idx], kind="stable")[:lam]]] = 1.0
        return s


def _flat(per_group: list[int | tuple[int, int]]) -> np.ndarray:
    """One budget per group: a tail pair gives its term's below and above groups."""
    return np.array([x for b in per_group for x in (b if isinstance(b, tuple) else (b,))], dtype=int)


def _group_budgets(budget: Budget, design: Design, selection: str, notes: list[str]
                   ) -> list[int | tuple[int, int]]:
    """The budget of each term (or factor) in design order: an int, or a (below, above) pair; a
    value above its group's size is capped there, and ``notes`` says so."""
    what = "random term" if selection == "column" else "grouping factor"
    sizes = SelectionProblem.group_sizes_of(design, selection)
    names = list(sizes)
    units = {nm: "levels" if selection == "cluster" or t.q == 1 else "columns (levels x coefficients)"
             for nm, t in zip(names, design.terms if selection == "column" else [None] * len(names))}
    if not isinstance(budget, Mapping):
        return [_one_budget(budget, nm, sizes[nm], what, units[nm], notes) for nm in names]
    aliases = _aliases(names, design, selection)
    unknown = [k for k in budget if k not in aliases]
    if unknown:
        raise BudgetError(f"budget names unknown {what}(s) {unknown}; expected keys among {names}")
    out: list[int | tuple[int, int] | None] = [None] * len(names)
    for key, val in budget.items():
        gi = aliases[key]
        name = names[gi]
        if isinstance(val, (tuple, list)):
            out[gi] = _tail_budget(val, name, sizes[name], design.terms[gi] if selection == "column" else None, notes)
        else:
            out[gi] = _one_budget(val, name, sizes[name], what, units[name], notes)
    missing = [names[i] for i, b in enumerate(out) if b is None]
    if missing:
        raise BudgetError(f"budget gives no value for {what}(s) {missing}")
    return out


def _tail_budget(val, name: str, size: int, term, notes: list[str]) -> tuple[int, int]:
    if term is None:
        raise BudgetError(f"a (below, above) tail budget for {name} needs selection='column'")
    if term.q != 1:
        raise BudgetError(f"a (below, above) tail budget needs a term with one coefficient per level (a random "
                          f"intercept or a single slope); {name} has {term.q}: {term.coef_names}")
    if len(val) != 2:
        raise BudgetError(f"a tail budget for {name} is a pair (below, above), got {val!r}")
    below, above = (_one_budget(v, f"{name} ({side})", size, "random term", "levels", notes)
                    for v, side in zip(val, (BELOW, ABOVE)))
    return below, above


def _one_budget(val, name: str, size: int, what: str, units: str, notes: list[str]) -> int:
    if isinstance(val, (bool, np.bool_)) or not isinstance(val, Integral):
        raise BudgetError(f"budget for {what} {name} must be a whole number, got {val!r}")
    if val < 0:
        raise BudgetError(f"budget {val} for {what} {name} is out of range: it must be at least 0")
    if val > size:
        notes.append(f"budget {val} for {what} {name} is above its {size} {units}: capped at {size} "
                     "(every one may be nonzero)")
        return size
    return int(val)


def _aliases(names: list[str], design: Design, selection: str) -> dict[str, int]:
    """Budget keys accepted for each group: its label, and for terms also 'expr | group'."""
    out = {nm: i for i, nm in enumerate(names)}
    if selection == "column":
        for i, t in enumerate(design.terms):
            out.setdefault(f"{t.term.expr} | {t.term.group}", i)
            if sum(u.term.group == t.term.group for u in design.terms) == 1:
                out.setdefault(t.term.group, i)
    return out
