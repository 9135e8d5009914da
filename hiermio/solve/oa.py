"""Outer approximation in SCIP: certified optimal supports under L0 budgets.

The master problem is

    min eta   s.t.   eta >= c(s0) + grad c(s0)' (s - s0)   for the cuts found so far,
                     sum_{u in group} s_u <= budget_group,  s binary,

where c is the convex ridge fit value of ``sufficient.py``. A SCIP constraint handler adds the
gradient cut at every integral LP solution that violates eta >= c(s) (enforcement) and at
fractional LP points too (separation, with a per-node round cap), because c is convex on the whole
cube. Every integral point it evaluates is also handed to SCIP as a feasible solution. The root LP
starts with cuts at the warm start, a few heuristic supports and s = 1.

The objective is divided by c(0), the fit with no cluster effects, so SCIP works with values of
order one; all reported values are on the original scale.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from pyscipopt import SCIP_PARAMSETTING, SCIP_RESULT, SCIP_STAGE, Conshdlr, Model, quicksum
from pyscipopt import __version__ as pyscipopt_version

from .certificate import Certificate, SolverProgress
from ..core.exceptions import BudgetError
from .fixed_branching import SeparableForm, branch_on_fixed
from ..problem.inner import one_blas_thread
from .relaxation import FrankWolfeBound, LowerBound
from ..problem.selection import SelectionProblem

__all__ = ["SolverOptions", "solve", "bound_only", "enumerate_supports", "fixed_effects_form",
           "n_full_supports"]

# SCIP's feasibility tolerance, in scaled units (objective divided by c(0), so of order one). An
# integral point whose eta is below c(s) by more than this gets a cut; within it, the LP cannot be
# made to move and cutting again would loop. The returned objective is always recomputed exactly.
_FEASTOL = 1e-7
_FIXED_NODES_BEFORE_SCIP = 200
_FIXED_DIRECTIONS_MAX = 10  # "auto" branches on at most this many fixed effects
# a stalled fixed-effects search hands over to SCIP only with this many units at most: SCIP's master
# has one binary per unit, and proves 6 in 0.03 s, but 50 random intercepts at ridge 0.01 took it
# 3.1 s (the fixed-effects search: 0.7 s) and 100 or 200 stayed open after 30 s (0.2-0.4 s); with
# 2,000, the hand-over turned a 9 s certificate into a 0.4 % gap after 60 s
_STALLED_UNITS_MAX = 20
# what each path writes in Certificate.solver: the search that ran
SCIP_SOLVER = f"SCIP via pyscipopt {pyscipopt_version} (outer approximation)"
EXACT_FIT_SOLVER = "closed form: the fixed part fits the response exactly"
NO_CHOICE_SOLVER = "closed form: every budget is 0 or its whole group"
RELAXATION_SOLVER = "the continuous relaxation alone (certify=False)"


@dataclass
class SolverOptions:
    """Limits and switches of the branch-and-cut (see ``hiermio.fit`` for their meaning)."""

    time_limit: float = 60.0
    gap: float = 1e-4
    seed: int = 0
    threads: int = 1
    verbose: bool = False
    callback: Callable[[SolverProgress], None] | None = None
    max_rounds_root: int = 50
    max_rounds_node: int = 1
    fw_iterations_root: int = 300  # before the search: the root LP starts at the relaxation bound
    fw_iterations_node: int = 30  # per separation round
    enumeration_limit: int = 2000  # problems with at most this many full supports are enumerated
    search: str = "auto"  # auto | fixed_effects | outer_approximation (see FitControl.search)
    lower_bound: LowerBound = field(default_factory=FrankWolfeBound)  # root, node and screening bounds


class _Master:
    """State shared by the constraint handler: variables, cache, incumbent, counters."""

    def __init__(self, problem: SelectionProblem, model: Model, scale: float, opts: SolverOptions):
        self.problem, self.model, self.scale, self.opts = problem, model, scale, opts
        self.s_vars: list = []
        self.eta = None
        self.cache: dict[bytes, tuple[float, np.ndarray]] = {}
        self.best_value = np.inf
        self.best_support: np.ndarray | None = None
        self.n_cuts = 0
        self.first_evaluation = problem.n_evaluations
        self.rounds: dict[int, int] = {}
        self.start = time.perf_counter()
        self.deadline = self.start + opts.time_limit
        self.last_report = 0.0

    # scaled value and unit gradient at s (cached for binary points)
    def oracle(self, s: np.ndarray) -> tuple[float, np.ndarray]:
        binary = np.all((s == 0) | (s == 1))
        key = s.astype(np.int8).tobytes() if binary else None
        if key is not None and key in self.cache:
            return self.cache[key]
        ev, grad = self.problem.evaluate(s)
        out = (ev.value / self.scale, grad / self.scale)
        if key is not None:
            self.cache[key] = out
            if out[0] < self.best_value and self.problem.is_feasible(s):
                self.best_value, self.best_support = out[0], s.copy()
        return out

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        m = self.model
        tv = [m.getTransformedVar(v) for v in self.s_vars]
        return np.array([v.getLbLocal() for v in tv]), np.array([v.getUbLocal() for v in tv])

    def values(self, sol) -> tuple[np.ndarray, float]:
        m = self.model
        s = np.array([m.getSolVal(sol, v) for v in self.s_vars])
        return s, m.getSolVal(sol, self.eta)

    def cut(self, s0: np.ndarray, local: bool = False):
        """The gradient cut at s0 as a SCIP row: eta - g's >= c(s0) - g's0."""
        c, g = self.oracle(s0)
        m = self.model
        row = m.createEmptyRowUnspec(name=f"oa{self.n_cuts}", lhs=c - g @ s0, rhs=None, local=local, removable=True)
        m.cacheRowExtensions(row)
        m.addVarToRow(row, m.getTransformedVar(self.eta), 1.0)
        for v, gu in zip(self.s_vars, g):
            if gu != 0.0:
                m.addVarToRow(row, m.getTransformedVar(v), -gu)
        m.flushRowExtensions(row)
        return row, c

    def add_cut(self, s0: np.ndarray, force: bool) -> bool:
        row, _ = self.cut(s0)
        added = False
        if force or self.model.isCutEfficacious(row):
            self.model.addCut(row, forcecut=force)
            self.n_cuts += 1
            added = True
        self.model.releaseRow(row)
        return added

    def offer(self, s: np.ndarray) -> None:
        """Give SCIP the feasible point (s, c(s)), unless it was seen before."""
        if s.astype(np.int8).tobytes() in self.cache:
            return
        self.offer_evaluated(s)

    def offer_evaluated(self, s: np.ndarray) -> None:
        c, _ = self.oracle(s)
        m = self.model
        sol = m.createSol(None)
        for v, val in zip(self.s_vars, s):
            m.setSolVal(sol, v, float(val))
        m.setSolVal(sol, self.eta, c)
        m.trySol(sol, printreason=False, completely=False, free=True)

    def rounded(self, s_frac: np.ndarray, grad: np.ndarray) -> np.ndarray:
        # break ties among equal LP values by gradient, the first-order gain of a unit
        return self.problem.top_within_budget(s_frac - 1e-9 * grad / (np.abs(grad).max() + 1e-300))

    def report(self) -> None:
        if self.opts.callback is None:
            return
        now = time.perf_counter() - self.start
        if now - self.last_report < 0.5:
            return
        self.last_report = now
        m = self.model
        primal, dual = self.best_value * self.scale, m.getDualbound() * self.scale
        gap = max(0.0, (primal - dual) / abs(primal)) if primal not in (0, np.inf) else np.inf
        self.opts.callback(SolverProgress(now, primal, dual, gap, m.getNTotalNodes(), self.n_cuts))


class _OACuts(Conshdlr):
    """Lazy gradient cuts for eta >= c(s)."""

    def __init__(self, master: _Master):
        self.master = master

    def _violated(self, s: np.ndarray, eta: float) -> bool:
        c, _ = self.master.oracle(s)
        return eta < c - 10 * _FEASTOL * max(1.0, abs(c))

    def conscheck(self, constraints, solution, checkintegrality, checklprows, printreason, completely):
        s, eta = self.master.values(solution)
        return {"result": SCIP_RESULT.INFEASIBLE if self._violated(s, eta) else SCIP_RESULT.FEASIBLE}

    def consenfolp(self, constraints, nusefulconss, solinfeasible):
        ms = self.master
        s, eta = ms.values(None)
        s = np.round(s)
        ms.report()
        if not self._violated(s, eta):
            return {"result": SCIP_RESULT.FEASIBLE}
        ms.add_cut(s, force=True)  # s is now cached and may be the incumbent
        ms.offer_evaluated(s)
        return {"result": SCIP_RESULT.SEPARATED}

    def consenfops(self, constraints, nusefulconss, solinfeasible, objinfeasible):
        s, eta = self.master.values(None)
        return {"result": SCIP_RESULT.INFEASIBLE if self._violated(np.round(s), eta) else SCIP_RESULT.FEASIBLE}

    def conssepalp(self, constraints, nusefulconss):
        ms = self.master
        U = ms.problem.n_units
        node = ms.model.getCurrentNode().getNumber()
        root = ms.model.getDepth() == 0
        cap = ms.opts.max_rounds_root if root else ms.opts.max_rounds_node
        if ms.rounds.get(node, 0) >= cap:
            return {"result": SCIP_RESULT.DIDNOTRUN}
        ms.rounds[node] = ms.rounds.get(node, 0) + 1
        s, eta = ms.values(None)
        s = np.clip(s, 0.0, 1.0)
        c, g = ms.oracle(s)
        # a rounded LP point is a cheap primal heuristic
        ms.offer(ms.rounded(s, g))
        ms.report()
        # the cut at the best Frank-Wolfe point of this node's relaxation lifts the LP to that bound
        lower, upper = ms.local_bounds()
        point, _ = ms.opts.lower_bound.bound(ms.problem, s, lower, upper, iterations=min(ms.opts.fw_iterations_node, 5 + U),
                                             cutoff=ms.best_value * ms.scale, deadline=ms.deadline)
        cp, gp = ms.oracle(point)
        cut_at_lp = cp + gp @ (s - point)
        if eta >= cut_at_lp - 1e-7 * max(1.0, abs(cp)):
            return {"result": SCIP_RESULT.DIDNOTFIND}
        ms.add_cut(point, force=True)
        return {"result": SCIP_RESULT.SEPARATED}

    def conslock(self, constraint, locktype, nlockspos, nlocksneg):
        # the cuts have +eta and -g's with g <= 0: lowering eta or any s may violate them
        ms = self.master
        original = ms.model.getStage() == SCIP_STAGE.PROBLEM
        for v in [ms.eta, *ms.s_vars]:
            var = v if original else ms.model.getTransformedVar(v)
            ms.model.addVarLocksType(var, locktype, nlockspos, nlocksneg)


@one_blas_thread
def solve(
    problem: SelectionProblem,
    starts: list[np.ndarray],
    options: SolverOptions | None = None,
    form: SeparableForm | None = None,
) -> tuple[np.ndarray, Certificate]:
    """Minimise c over binary supports within the budgets; returns the support and its certificate.

    ``form`` is :func:`fixed_effects_form`'s answer when the caller already has it (None: solve
    asks for it itself).

    ``starts`` are binary supports from heuristics: the best is SCIP's starting solution and each
    contributes an initial cut. A time limit returns the best support found, with the gap proven.
    """
    opts = options or SolverOptions()
    t0 = time.perf_counter()
    U = problem.n_units
    if problem.stats.exact_fit:  # every support fits exactly: the smallest is the answer
        return np.zeros(U), _exact_fit_certificate(problem, np.zeros(U), t0)
    if _no_choice(problem):
        s = problem.top_within_budget(np.zeros(U))
        value = problem.value(s)
        return s, Certificate("closed_form", value, value, evaluations=1, time=time.perf_counter() - t0,
                              solver=NO_CHOICE_SOLVER)
    if n_full_supports(problem) <= opts.enumeration_limit:
        return enumerate_supports(problem, t0)
    form = form if form is not None else fixed_effects_form(problem, opts)
    fixed_dual, fixed_nodes = -np.inf, 0
    if form is not None:
        # several units per level: the bound goes through a Lagrangian on the budget, whose duality
        # gap can keep small problems open; under "auto" SCIP takes over after a few hundred boxes,
        # or, with one unit per level, once the gap stops falling (nearly collinear covariates)
        auto = opts.search == "auto"
        cap = _FIXED_NODES_BEFORE_SCIP if auto and not form.sortable else 10**9
        support, cert = branch_on_fixed(problem, starts, opts.time_limit - (time.perf_counter() - t0), opts.gap,
                                        form, node_limit=cap, callback=opts.callback,
                                        stop_when_stalled=auto and U <= _STALLED_UNITS_MAX)
        if cert.status not in ("bound_limit", "node_limit", "stalled"):
            return support, replace(cert, time=time.perf_counter() - t0)
        # the branch-and-cut goes on from the incumbent, and its bound is combined with this one
        # (both are global bounds)
        starts, fixed_dual, fixed_nodes = [support, *starts], cert.dual, cert.nodes
    null_value = problem.value(np.zeros(U))

    model = Model("hiermio-oa")
    model.hideOutput(not opts.verbose)
    _configure(model, opts)
    ms = _Master(problem, model, null_value, opts)
    ones = np.ones(U)
    ms.s_vars = [model.addVar(f"s{u}", vtype="B") for u in range(U)]
    ms.eta = model.addVar("eta", vtype="C", lb=ms.oracle(ones)[0], ub=1.0)
    model.setObjective(ms.eta, "minimize")
    for gi, lam in enumerate(problem.budgets):
        idx = np.flatnonzero(problem.group_of_unit == gi)
        model.addCons(quicksum(ms.s_vars[u] for u in idx) <= int(lam), name=f"budget{gi}")
    fw_start = np.mean([np.asarray(x, float) for x in starts], axis=0) if starts else np.zeros(U)
    incumbent = min((problem.value(np.asarray(x, float)) for x in starts), default=np.inf)
    # none once the bound meets the incumbent
    fw_point, _ = opts.lower_bound.bound(problem, fw_start, np.zeros(U), ones, iterations=_root_iterations(opts, U),
                                         cutoff=incumbent * (1 - opts.gap), deadline=t0 + 0.5 * opts.time_limit)
    for s0 in [ones, fw_point, *starts]:
        c, g = ms.oracle(np.asarray(s0, float))
        model.addCons(ms.eta - quicksum(float(g[u]) * ms.s_vars[u] for u in range(U) if g[u] != 0) >= c - g @ s0)

    handler = _OACuts(ms)
    model.includeConshdlr(
        handler, "hiermio_oa", "outer-approximation cuts for eta >= c(s)",
        sepapriority=1, enfopriority=-1, chckpriority=-1, sepafreq=1, propfreq=-1,
        eagerfreq=100, needscons=True,
    )
    model.addPyCons(model.createCons(handler, "oa", initial=False, separate=True, enforce=True,
                                     check=True, propagate=False))

    if starts:
        best = min(starts, key=lambda s0: ms.oracle(np.asarray(s0, float))[0])
        sol = model.createSol(None)
        for v, val in zip(ms.s_vars, best):
            model.setSolVal(sol, v, float(val))
        model.setSolVal(sol, ms.eta, ms.oracle(np.asarray(best, float))[0])
        model.addSol(sol)

    # the clock runs from the call: set-up and the root relaxation count against the limit
    model.setParam("limits/time", max(0.01, opts.time_limit - (time.perf_counter() - t0)))
    model.optimize()
    status = {"optimal": "optimal", "gaplimit": "gap_limit", "timelimit": "time_limit",
              "nodelimit": "node_limit", "userinterrupt": "interrupted"}.get(model.getStatus(), model.getStatus())
    if model.getNSols() > 0:
        best_sol = model.getBestSol()
        s_scip = np.round([model.getSolVal(best_sol, v) for v in ms.s_vars])
        ms.oracle(s_scip)
    support = ms.best_support if ms.best_support is not None else np.asarray(starts[0], float)
    value = problem.value(support)
    # c(all units) <= c(s) for every s: a valid bound however early the search stopped
    dual = min(max(model.getDualbound() * null_value, ms.oracle(ones)[0] * null_value, 0.0, fixed_dual), value)
    if status == "optimal":
        dual = max(dual, value - 1e-9 * abs(value))  # SCIP proved it; keep floating noise out of the gap
    cert = Certificate(status, value, dual, nodes=model.getNTotalNodes() + fixed_nodes, cuts=ms.n_cuts,
                       evaluations=problem.n_evaluations - ms.first_evaluation, time=time.perf_counter() - t0,
                       solver=SCIP_SOLVER)
    if fixed_nodes:
        cert.solver = f"branch-and-bound on the fixed effects ({fixed_nodes} boxes), then {cert.solver}"
    return support, cert


def fixed_effects_form(problem: SelectionProblem, options: SolverOptions) -> SeparableForm | None:
    """The form the search branches on when ``options.search`` asks for (or, under "auto", allows)
    branching on the fixed effects; None when the outer approximation runs.

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "g": list("aabbcc"), "h": list("ababab")})
    >>> sel = SelectionProblem.build(build_design("y ~ 1 + (1 | g)", df), 1, np.ones(3))
    >>> type(fixed_effects_form(sel, SolverOptions())).__name__
    'SeparableForm'
    >>> crossed = SelectionProblem.build(build_design("y ~ 1 + (1 | g) + (1 | h)", df), 1, np.ones(5))
    >>> fixed_effects_form(crossed, SolverOptions()) is None
    True
    """
    if options.search == "outer_approximation":
        return None
    if options.search == "auto" and problem.stats.p > _FIXED_DIRECTIONS_MAX:
        # boxes in many dimensions: the paper's 35 covariates hit 60 s where SCIP took under 0.5 s
        return None
    form = SeparableForm.build(problem)
    if options.search == "fixed_effects" and form is None:
        raise BudgetError("search='fixed_effects' needs a model whose cluster effects all belong to one grouping "
                          "factor or to nested ones (not crossed), without tail budgets; use search='auto' or "
                          "'outer_approximation'")
    return form


@one_blas_thread
def bound_only(problem: SelectionProblem, support: np.ndarray, options: SolverOptions | None = None) -> Certificate:
    """Certificate of ``support`` from the continuous relaxation alone (no branch-and-bound).

    The bound is Frank-Wolfe's on the perspective relaxation over the whole budget polytope, so the
    gap is proven, if looser than a search would make it.

    >>> import numpy as np, pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(6), 10), "x": rng.normal(size=60)})
    >>> df["y"] = df.x + np.where(df.g == 0, 2.0, 0.0) + rng.normal(size=60)
    >>> sel = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), budget=1, mu=np.ones(6))
    >>> cert = bound_only(sel, np.eye(6)[0])
    >>> bool(cert.dual <= min(sel.value(np.eye(6)[k]) for k in range(6)) <= cert.primal), cert.nodes
    (True, 0)
    """
    opts = options or SolverOptions()
    t0 = time.perf_counter()
    n0 = problem.n_evaluations
    U = problem.n_units
    if problem.stats.exact_fit:
        return _exact_fit_certificate(problem, support, t0)
    value = problem.value(support)
    if _no_choice(problem):
        return Certificate("closed_form", value, value, evaluations=1, time=time.perf_counter() - t0,
                           solver=NO_CHOICE_SOLVER)
    _, bound = opts.lower_bound.bound(problem, support, np.zeros(U), np.ones(U), iterations=_root_iterations(opts, U),
                                      cutoff=value * (1 - opts.gap), deadline=t0 + opts.time_limit)
    status = "gap_limit" if bound >= value * (1 - opts.gap) else "relaxation_bound"
    return Certificate(status, value, min(bound, value), evaluations=problem.n_evaluations - n0,
                       time=time.perf_counter() - t0, solver=RELAXATION_SOLVER)


def _exact_fit_certificate(problem: SelectionProblem, support: np.ndarray, t0: float) -> Certificate:
    """The fixed part fits the response exactly: c at ``support`` is rounding noise, and a larger
    support may leave still less of it, so the only bound that holds is c >= 0.

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> df = pd.DataFrame({"x": np.arange(8.0), "g": list("aabbccdd")})
    >>> df["y"] = 1 + 2 * df.x
    >>> sel = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), 1, np.ones(4))
    >>> cert = _exact_fit_certificate(sel, np.zeros(4), 0.0)
    >>> cert.status, cert.dual, cert.primal < 1e-20
    ('closed_form', 0.0, True)
    """
    value = problem.value(support)
    return Certificate("closed_form", value, 0.0, evaluations=1, time=time.perf_counter() - t0,
                       solver=EXACT_FIT_SOLVER)


def n_full_supports(problem: SelectionProblem) -> int:
    """How many supports use every budget in full: c only falls as units are added, so an optimum
    is among them.

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "g": list("aabbcc")})
    >>> n_full_supports(SelectionProblem.build(build_design("y ~ 1 + (1 | g)", df), 2, np.ones(3)))
    3
    """
    total = 1
    for size, lam in zip(problem.group_sizes, problem.budgets):
        total *= math.comb(int(size), int(lam))
        if total > 10**12:
            break
    return total


def enumerate_supports(problem: SelectionProblem, t0: float | None = None) -> tuple[np.ndarray, Certificate]:
    """The optimal support by evaluating every full support: exact, and faster than a search
    when there are a few thousand of them.

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 9, 9], "g": list("aabbcc")})
    >>> sel = SelectionProblem.build(build_design("y ~ 1 + (1 | g)", df), 1, np.ones(3))
    >>> support, cert = enumerate_supports(sel)
    >>> support.tolist(), cert.status, cert.evaluations
    ([0.0, 0.0, 1.0], 'optimal', 3)
    """
    t0 = time.perf_counter() if t0 is None else t0
    n0 = problem.n_evaluations
    groups = [np.flatnonzero(problem.group_of_unit == g) for g in range(len(problem.budgets))]
    best, best_value = None, np.inf
    for picks in itertools.product(*(itertools.combinations(idx, int(lam)) for idx, lam in zip(groups, problem.budgets))):
        s = np.zeros(problem.n_units)
        for chosen in picks:
            s[list(chosen)] = 1.0
        value = problem.value(s)
        if value < best_value:
            best, best_value = s, value
    return best, Certificate("optimal", best_value, best_value, evaluations=problem.n_evaluations - n0,
                             time=time.perf_counter() - t0, solver="enumeration of every full support")


def _no_choice(problem: SelectionProblem) -> bool:
    """Every budget is 0 or its whole group: the support is determined."""
    return problem.n_units == 0 or bool(np.all((problem.budgets == 0) | (problem.budgets == problem.group_sizes)))


def _root_iterations(opts: SolverOptions, n_units: int) -> int:
    # small problems need few Frank-Wolfe iterations at the root
    return min(opts.fw_iterations_root, 20 + 5 * n_units)


def _configure(model: Model, opts: SolverOptions) -> None:
    # limits/time is set just before optimize(), from the time left
    model.setParam("limits/gap", float(opts.gap))
    model.setParam("numerics/feastol", _FEASTOL)
    model.setParam("randomization/randomseedshift", int(opts.seed))
    model.setParam("randomization/permutationseed", int(opts.seed))
    model.setParam("randomization/lpseed", int(opts.seed))
    model.setParam("parallel/maxnthreads", max(1, int(opts.threads)))
    # dense cut rows make SCIP's aggregation separator slow for no gain
    model.setParam("separating/aggregation/freq", -1)
    model.setPresolve(SCIP_PARAMSETTING.FAST)
    model.setParam("display/freq", 50)
