"""Searches with one BLAS thread against the BLAS's own threads, in one process on one machine.

Every search entry runs with one BLAS thread (:func:`hiermio.problem.inner.one_blas_thread`): its work is
thousands of small dense solves, where a second thread costs more in waking and synchronising
than it computes. This times the search (stage 2, :func:`hiermio.fitting.api.optimize`, on a problem whose
pass over the rows is done) both ways, alternating, the median of a few runs each, on:

* sleepstudy with random slopes (the fixed-effects branch-and-bound),
* Exam (1 | school) at ridge 0.1 (the same search on 65 clusters),
* the paper's size, 14 clusters x 50 rows x 35 covariates (a 700 x 36 fixed part): budget 1
  (enumeration), budget 5 (SCIP's outer approximation: p > 10), and budget 5 with
  ``certify=False`` (heuristics and the relaxation's bound).

The pass over the rows (:func:`hiermio.problem.sufficient.cross_products` and the statistics made from
its sums) is timed both ways too, at 700 rows (one block: hiermio uses one thread) and 200,000
(several blocks: hiermio leaves the BLAS its threads).

    python benchmarks/bench_blas.py          # 5 runs per problem and setting
    python benchmarks/bench_blas.py --quick  # 2 runs
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info

import hiermio as hm
import hiermio.problem.inner
import hiermio.problem.sufficient
from _common import clustered, timed
from hiermio.fitting.api import _statistics, build_problem, optimize
from hiermio.core.control import FitControl
from hiermio.formula.design import build_design
from hiermio.problem.sufficient import cross_products

RUNS = 2 if "--quick" in sys.argv else 5

paper, paper_formula = clustered(K=14, n_per=50, p=35, n_nonzero=5, seed=0)
CASES = [  # label, formula, data, budget, options
    ("sleepstudy (1 + Days | Subject), budget 5", "Reaction ~ Days + (1 + Days | Subject)",
     hm.load_dataset("sleepstudy"), 5, {}),
    ("Exam (1 | school), budget 10, ridge 0.1", "normexam ~ standLRT + sex + (1 | school)", hm.load_dataset("Exam"),
     10, {"ridge": 0.1}),
    ("paper size 14 x 50 x 35, budget 1 (enumeration)", paper_formula, paper, 1, {}),
    ("paper size 14 x 50 x 35, budget 5 (SCIP)", paper_formula, paper, 5, {}),
    ("paper size 14 x 50 x 35, budget 5, certify=False", paper_formula, paper, 5, {"certify": False}),
]


def search_time(problem, control: FitControl, threads: int | None) -> float:
    hiermio.problem.inner.SEARCH_BLAS_THREADS = threads
    try:
        problem = problem.with_budget(problem.budget_record().as_budget())  # a fresh evaluation count
        return timed(optimize, problem, control)[1]
    finally:
        hiermio.problem.inner.SEARCH_BLAS_THREADS = 1


def pass_time(design, threads: int | None) -> float:
    """The pass and the statistics from its sums with ``threads`` (1 for "one thread"; None: the
    BLAS's own), whatever hiermio.problem.sufficient._pass_threads would choose."""
    chosen = hiermio.problem.sufficient._pass_threads
    hiermio.problem.sufficient._pass_threads = lambda design: threads
    try:
        return timed(lambda: _statistics(design, cross_products(design, progress=False), FitControl()))[1]
    finally:
        hiermio.problem.sufficient._pass_threads = chosen


def compare(label: str, run) -> None:
    times = {1: [], None: []}
    for _ in range(RUNS):
        for threads in (1, None):  # alternating, so that load on the machine falls on both
            times[threads].append(run(threads))
    one, own = float(np.median(times[1])), float(np.median(times[None]))
    rows.append({"problem": label, "one thread s": round(one, 4), "BLAS threads s": round(own, 4),
                 "BLAS threads / one": round(own / one, 2)})
    print(rows[-1], flush=True)


blas = [f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info() if i["user_api"] == "blas"]
print(f"BLAS: {', '.join(blas)}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
      f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; median of {RUNS} searches each\n")
rows = []
warnings.simplefilter("ignore")
for label, formula, data, budget, options in CASES:
    control = FitControl(**options)
    problem = build_problem(formula, data, budget, control)
    compare(f"search: {label}", lambda threads: search_time(problem, control, threads))
large, large_formula = clustered(K=1000, n_per=200, p=35, n_nonzero=5, seed=0)
for label, formula, data in (("700 x 36", paper_formula, paper), ("200,000 x 36", large_formula, large)):
    design = build_design(formula, data)
    compare(f"pass over the rows: {label}", lambda threads: pass_time(design, threads))
print()
print(pd.DataFrame(rows).set_index("problem").to_string())
