"""Data that do not fit in memory: a SPARCS-shaped parquet directory (discharges, hospitals,
patient covariates), fitted in partitions (chunks read by pyarrow, and a dask LocalCluster with 2
workers) beside the in-memory fit and lme4's lmer on the same rows where they can run.

Every case runs in its own child process, so "peak MB" is that process's peak resident memory
(the driver's: dask's workers are other processes). "design s" is the design's passes (levels,
missing values; in memory: the design built from the frame), "stats pass s" the one pass for the
sufficient statistics, "stats s" both, "solve s" the search. MB/s per core is the bytes of the
columns the model reads (8 per value) over that time and the cores it ran on. "cv, 5 folds" is
``hm.cv`` on the parquet directory (budgets 0/10/20/40, the folds' sums in one pass, then the
final certified fit): its "stats s" is all of it.

    python benchmarks/bench_out_of_core.py                    # 1e6, 1e7, 3e7 rows
    python benchmarks/bench_out_of_core.py --sizes 1e6 --dir /tmp/sparcs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

FORMULA = "los ~ age + sex + severity + x1 + x2 + x3 + x4 + x5 + x6 + x7 + (1 | hospital)"
COLUMNS = ["los", "age", "sex", "severity", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "hospital"]
HOSPITALS = 500
BUDGET = 20
CV_BUDGETS = [0, 10, 20, 40]
ROWS_PER_FILE = 1_000_000


def generate(path: str, n: int, seed: int = 0) -> None:
    """n discharges in files of a million rows: 10 covariates (sex and a 4-level severity among
    them, as text: every reader, pyarrow's, dask's and pandas', gives text the same type),
    500 hospitals of which 20 differ from the population."""
    import pandas as pd

    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    size = rng.lognormal(0, 1, HOSPITALS)
    p = size / size.sum()
    shift = np.zeros(HOSPITALS)
    shift[rng.choice(HOSPITALS, 20, replace=False)] = rng.choice([-1.5, 1.5], 20)
    for i, start in enumerate(range(0, n, ROWS_PER_FILE)):
        m = min(ROWS_PER_FILE, n - start)
        h = rng.choice(HOSPITALS, m, p=p)
        age = rng.uniform(18, 95, m)
        sex = rng.choice(np.array(["F", "M"]), m)
        severity_code = rng.integers(1, 5, m)
        severity = np.array(["minor", "moderate", "major", "extreme"])[severity_code - 1]
        xs = rng.normal(size=(m, 7))
        los = (2 + 0.03 * age + 0.2 * (sex == "M") + 0.8 * severity_code + xs @ np.linspace(0.1, 0.7, 7)
               + shift[h] + rng.normal(0, 2, m))
        frame = pd.DataFrame({"los": los, "age": age, "sex": sex, "severity": severity,
                              **{f"x{j + 1}": xs[:, j] for j in range(7)}, "hospital": h.astype(np.int32)})
        frame.to_parquet(os.path.join(path, f"part-{i:04d}.parquet"), index=False)


def _child(kind: str, path: str) -> dict:
    """One case, in this (child) process."""
    import resource
    import warnings

    import pandas as pd

    from hiermio.fitting.api import make_fit, optimize, problem_from_cross_products
    from hiermio.core.control import FitControl
    from hiermio.formula.design import build_design
    from hiermio.formula.streaming import learn_design
    from hiermio.problem.sufficient import cross_products

    warnings.simplefilter("ignore")
    control = FitControl()
    out: dict = {"kind": kind}
    cluster = client = None
    if kind == "in memory":
        t0 = time.perf_counter()
        data = pd.read_parquet(path)
        out["read s"] = time.perf_counter() - t0
    elif kind == "dask, 2 workers":
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        data = dd.read_parquet(path)
    elif kind == "lmer":
        from hiermio.comparisons.lme4 import lmer

        data = pd.read_parquet(path)
        data["hospital"] = data["hospital"].astype(str)
        t0 = time.perf_counter()
        ref = lmer(FORMULA, data)
        out["stats s"] = time.perf_counter() - t0
        out["solve s"] = 0.0
        out["objective"] = float("nan")
        out["fixef age"] = float(ref.fixef()["age"])
    else:
        data = path
    if kind.startswith("cv"):
        import hiermio as hm

        t0 = time.perf_counter()
        res = hm.cv(FORMULA, path, budgets=CV_BUDGETS, folds=5, progress=False)
        out.update({"stats s": time.perf_counter() - t0, "solve s": 0.0, "objective": res.best_fit_.certificate.primal,
                    "status": f"cv chose {res.best_budget_}", "n": res.best_fit_.nobs})
    elif kind != "lmer":
        t0 = time.perf_counter()
        if kind == "in memory":
            design = build_design(FORMULA, data)
        else:  # build_problem's stages, timed apart: the design's passes, then the statistics pass
            design = learn_design(FORMULA, data)
        t1 = time.perf_counter()
        problem = problem_from_cross_products(design, cross_products(design), BUDGET, control)
        t2 = time.perf_counter()
        fit = make_fit(problem, optimize(problem, control), control)
        t3 = time.perf_counter()
        out.update({"design s": t1 - t0, "stats s": t2 - t0, "stats pass s": t2 - t1, "solve s": t3 - t2,
                    "objective": fit.certificate.primal, "status": fit.certificate.status,
                    "selected": sorted(map(str, fit.selected["(1 | hospital)"])), "fixef age": float(fit.fixef()["age"]),
                    "n": fit.nobs})
    out["peak MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if client is not None:
        client.close()
        cluster.close()
    return out


def _run(kind: str, path: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--dir", path]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "error": f"over {timeout:.0f} s"}
    if res.returncode != 0:
        return {"kind": kind, "error": (res.stderr.strip().splitlines() or ["?"])[-1][:80]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["1e6", "1e7", "3e7"])
    ap.add_argument("--dir", default="/tmp/hiermio-sparcs")
    ap.add_argument("--child", default=None)
    ap.add_argument("--lmer-up-to", type=float, default=1e6, help="run lmer up to this many rows")
    ap.add_argument("--memory-up-to", type=float, default=1e7, help="run the in-memory fit up to this many rows")
    ap.add_argument("--cv-up-to", type=float, default=1e7, help="run hm.cv (5 folds, budgets 0/10/20/40) up to this")
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.dir)))
        return
    import pandas as pd

    rows = []
    for size in args.sizes:
        n = int(float(size))
        path = os.path.join(args.dir, f"n{n}")
        if not os.path.isdir(path):
            t0 = time.perf_counter()
            generate(path, n)
            print(f"generated {n:,} rows in {time.perf_counter() - t0:.0f} s at {path}", flush=True)
        disk = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**20
        kinds = ["chunks (pyarrow)", "dask, 2 workers"]
        if n <= args.cv_up_to:
            kinds.append("cv, 5 folds (pyarrow)")
        if n <= args.memory_up_to:
            kinds.append("in memory")
        if n <= args.lmer_up_to:
            kinds.append("lmer")
        for kind in kinds:
            r = _run(kind, path, args.timeout)
            r.update({"rows": n, "parquet MB": disk})
            if "stats pass s" in r:
                cores = 2 if kind.startswith("dask") else 1
                r["MB/s per core"] = n * len(COLUMNS) * 8 / 2**20 / r["stats s"] / cores
                r["stats pass MB/s per core"] = n * len(COLUMNS) * 8 / 2**20 / r["stats pass s"] / cores
                r["us per row"] = 1e6 * (r["stats s"] + r["solve s"]) / n
            rows.append(r)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "selected"}, flush=True)
    table = pd.DataFrame(rows)
    cols = [c for c in ["rows", "kind", "parquet MB", "design s", "stats pass s", "stats s", "solve s", "us per row",
                        "stats pass MB/s per core", "MB/s per core", "peak MB",
                        "status", "objective", "fixef age", "error"] if c in table]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    # the answer is the same whatever read the data
    for n, group in table.groupby("rows"):
        fits = group[~group.kind.isin(["lmer", "cv, 5 folds (pyarrow)"])]
        fits = fits.dropna(subset=["objective"]) if "objective" in fits else fits.iloc[:0]
        if len(fits) > 1:
            obj = fits.objective.to_numpy()
            same = all(s == fits.selected.iloc[0] for s in fits.selected)
            print(f"{n:,} rows: objective spread {np.ptp(obj) / obj.min():.2e} (relative), same support: {same}")
    peak = table[table.kind == "chunks (pyarrow)"].set_index("rows")["peak MB"]
    if len(peak) > 1:
        print(f"chunks: driver peak memory {peak.iloc[-1] / peak.iloc[0]:.2f}x from {peak.index[0]:,} to "
              f"{peak.index[-1]:,} rows")


if __name__ == "__main__":
    main()
