"""The certificate issue's table: each hard case before (SCIP's outer approximation, the search
every fit used until now) and after (``search="auto"``: branching on the fixed effects where the
model has one grouping factor or nested ones), in one run on one machine.

Prints, per case and search: status, wall time of the whole fit, the proven gap, the gap as a
share of what the cluster effects explain, the time to the first solution and the nodes. Then the
paper-scale ratio to lme4's lmer (median of 9 fits, lmer in this process through rpy2) and the
peak memory of a 1,000,000-row fit (in a child process, so that its peak is its own).

    python benchmarks/bench_certificates.py            # everything (about 15 minutes)
    python benchmarks/bench_certificates.py --after    # only the new search
    python benchmarks/bench_certificates.py --memory   # only the memory of the 1,000,000-row fit
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

import hiermio as hm
from _common import clustered
from hiermio.paper.simulate import simulate_sparse

AFTER_ONLY = "--after" in sys.argv
MEMORY_ONLY = "--memory" in sys.argv


def slopes(K: int, n_per: int, seed: int = 0) -> pd.DataFrame:
    """Random intercepts and slopes, Gaussian (not sparse) across clusters."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(K), n_per)
    x, z = rng.normal(size=(2, len(g)))
    b0, b1 = rng.normal(scale=0.5, size=K), rng.normal(scale=0.3, size=K)
    y = 1 + 0.5 * x + 0.3 * z + b0[g] + b1[g] * z + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g})


big, big_formula = clustered(K=1000, n_per=50, p=5, n_nonzero=50, seed=0)
exam, pastes, insteval = (hm.load_dataset(n) for n in ("Exam", "Pastes", "InstEval"))
forty = simulate_sparse(K=40, n_per=12, n_nonzero=6, slope=True, seed=0)
CASES = [  # label, formula, data, budget, ridge, time limit
    ("1,000 clusters x 50 rows, p = 5, budget 50, ridge 0.1", big_formula, big, 50, 0.1, 60),
    ("Exam (1 | school), budget 10, ridge 0.1", "normexam ~ standLRT + sex + (1 | school)", exam, 10, 0.1, 30),
    ("Pastes (1 | batch/cask), budget 8, ridge 0.1", "strength ~ 1 + (1 | batch/cask)", pastes, 8, 0.1, 30),
    ("40 clusters (1 + z | g), budget 6, ridge 1", "y ~ x + (1 + z | g)", forty, 6, 1.0, 60),
    ("40 clusters (1 + z | g), budget 6, ridge 0.1", "y ~ x + (1 + z | g)", forty, 6, 0.1, 60),
    ("InstEval (1 | s) + (1 | d), budget 100, ridge 1", "y ~ 1 + (1 | s) + (1 | d)", insteval, 100, 1.0, 60),
    ("2,000 clusters x 25 rows (1 + z | g), budget 100, ridge 1", "y ~ x + z + (1 + z | g)", slopes(2000, 25),
     100, 1.0, 60),
]


def run(formula, data, budget, ridge, limit, search):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hm.HierMIOWarning)
        t0 = time.perf_counter()
        fit = hm.fit(formula, data, budget, ridge=ridge, time_limit=limit, search=search, progress=False)
        wall = time.perf_counter() - t0
    c, tm = fit.certificate, fit.timings
    return {"status": c.status, "wall s": round(wall, 2), "gap %": float(f"{100 * c.gap:.3g}"),
            "signal gap %": float(f"{100 * c.signal_gap:.3g}"),
            "first solution s": round(tm["design"] + tm["first_solution"], 2), "nodes": c.nodes,
            "objective": c.primal}


# memory: 1,000,000 rows x 5,000 clusters, p = 10. One child process writes the data to parquet,
# another reads them, then resets its peak RSS (Linux's clear_refs) and fits: the peak above the
# RSS before the fit is the fit's own (the simulation's and the reader's temporaries are not in it)
GENERATE = """
import sys
from hiermio.paper.simulate import simulate_confounded
df, formula = simulate_confounded(K=5000, n_per=200, p=10, n_nonzero=50, seed=0)
df.to_parquet(sys.argv[1])
print(formula)
"""
CHILD = """
import gc, sys, time, warnings, pandas as pd, hiermio as hm

def status(key):  # MB of /proc/self/status's VmRSS (now) or VmHWM (peak since the last reset)
    return next(int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith(key))

df = pd.read_parquet(sys.argv[1])
formula = sys.argv[2]
data_mb = df.memory_usage(deep=True).sum() / 2**20
warnings.simplefilter("ignore")
hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), 3, progress=False)  # imports done
gc.collect()
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from here
base = status("VmRSS")
t0 = time.perf_counter()
fit = hm.fit(formula, df, 50, time_limit=30, progress=False)
wall = time.perf_counter() - t0
peak = status("VmHWM")
c = fit.certificate
print(f"1,000,000 rows x 5,000 clusters, p = 10, budget 50: {c.status}, gap {100 * c.gap:.3g}%, {wall:.1f} s; "
      f"data {data_mb:.0f} MB; RSS {base:.0f} MB before the fit, peak {peak:.0f} MB during it: "
      f"the fit's extra peak {peak - base:.0f} MB = {(peak - base) / data_mb:.2f} x the data")
"""


def memory() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "confounded.parquet")
        formula = subprocess.run([sys.executable, "-c", GENERATE, path], capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1]
        print()
        print(subprocess.run([sys.executable, "-c", CHILD, path, formula], capture_output=True, text=True).stdout.strip())


if MEMORY_ONLY:
    memory()
    sys.exit(0)

rows = []
for label, formula, data, budget, ridge, limit in CASES:
    for search in (["auto"] if AFTER_ONLY else ["outer_approximation", "auto"]):
        out = run(formula, data, budget, ridge, limit, search)
        rows.append({"case": label, "search": "after" if search == "auto" else "before", **out})
        print(f"{label} [{rows[-1]['search']}]: {out}", flush=True)
table = pd.DataFrame(rows).set_index(["case", "search"])
pd.set_option("display.width", 250)
print()
print(table.drop(columns="objective").to_string())
if not AFTER_ONLY:  # the new search never returns a worse support than the old one
    obj = table["objective"].unstack("search")
    print("\nobjective after / before (<= 1 means the new search's support is at least as good):")
    print((obj["after"] / obj["before"]).map(lambda v: f"{v:.8f}").to_string())

# paper scale: 14 clusters, 35 covariates, 50 rows each; certified fits against lmer
try:
    hm.lmer("y ~ x + (1 | g)", pd.DataFrame({"y": [1., 2, 3, 4], "x": [0., 1, 0, 1], "g": [0, 0, 1, 1]}))
    have_r = True
except hm.RNotAvailableError as exc:
    print(f"\nlme4 not available ({exc}); no paper-scale ratio")
    have_r = False
if have_r:
    ratios = {"before": [], "after": []}
    print("\npaper scale (14 clusters, 35 covariates, 50 rows), gap 0:")
    for n_nonzero in (1, 5, 14):
        for rep in range(3):
            df, formula = clustered(K=14, n_per=50, p=35, n_nonzero=n_nonzero, seed=rep)
            t0 = time.perf_counter()
            hm.lmer(formula, df)
            t_lmer = time.perf_counter() - t0
            line = f"  {n_nonzero:>2} nonzero, rep {rep}: lmer {t_lmer:.3f} s"
            for search, key in (("outer_approximation", "before"), ("auto", "after")):
                if AFTER_ONLY and key == "before":
                    continue
                t0 = time.perf_counter()
                fit = hm.fit(formula, df, budget=n_nonzero, gap=0.0, search=search, progress=False)
                t = time.perf_counter() - t0
                ratios[key].append(t / t_lmer)
                line += f"; {key} {t:.3f} s ({fit.certificate.status}, ratio {t / t_lmer:.2f})"
            print(line, flush=True)
    for key, r in ratios.items():
        if r:
            print(f"median MIO / lmer, {key}: {np.median(r):.2f} (max {np.max(r):.2f}, {len(r)} fits)")


memory()
