"""The study the default selection ridge was chosen from (issue: select, then refit).

Two parts, each printed as a table:

1. Real data, one certified fit per (case, ridge) with a 30 s time limit: status, seconds, gap.
   Refitting does not change the selection, so it does not change these columns.
2. The paper's simulation study (sparse and Gaussian effects, all three scales, ``reps`` replicates
   per scenario) with MIO at each ridge, refit on and off, and lme4 once on the same data sets:
   mean beta error (MIO over lme4's), the share of true zeros estimated zero (against ridge 1e-4's),
   and the certified fit's mean solve time and largest gap.

The criteria of the issue: certify fastest, while MIO's beta error stays below lme4's at every scale
and its sparsity recovery at least as good as ridge 1e-4's.

    python benchmarks/ridge_study.py [reps] [time_limit]     # defaults 3 and 30
"""

from __future__ import annotations

import sys
import time
import warnings

import pandas as pd

import hiermio as hm
from hiermio.paper.reproduce import markdown_table, run_study
from _common import clustered, real_data_cases

RIDGES = (1e-4, 0.1, 0.3, 1.0, 3.0)
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
time_limit = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0


def real_cases():
    big, big_formula = clustered(K=1000, n_per=50, p=5, n_nonzero=50, effect=0.5, seed=0)
    mid, mid_formula = clustered(K=500, n_per=50, p=5, n_nonzero=25, effect=0.5, seed=0)
    return [
        *real_data_cases(),
        ("500 clusters x 50 rows, p = 5, budget 25", mid_formula, mid, 25),
        ("1,000 clusters x 50 rows, p = 5, budget 50", big_formula, big, 50),
    ]


def real_data_table() -> pd.DataFrame:
    rows = []
    for label, formula, df, budget in real_cases():
        for ridge in RIDGES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", hm.HierMIOWarning)
                t0 = time.perf_counter()
                fit = hm.fit(formula, df, budget, ridge=ridge, time_limit=time_limit, progress=False)
                wall = time.perf_counter() - t0
            c = fit.certificate
            rows.append({"case": label, "ridge": ridge, "cell": f"{c.status} {wall:.2f} s, gap {100 * c.gap:.2g}%"})
    t = pd.DataFrame(rows).pivot(index="case", columns="ridge", values="cell")
    return t.reindex([c[0] for c in real_cases()])[list(RIDGES)]


def simulation_table() -> pd.DataFrame:
    common = dict(tables="all", reps=reps, levels={"icc": []}, n_jobs=2, progress=False)
    lme4 = run_study(methods=["lmer"], **common).by_scale().loc["lmer"]
    rows = []
    for ridge in RIDGES:
        for refit in (True, False):
            s = run_study(methods=["mio"], ridge=ridge, refit=refit, **common).by_scale().loc["mio"]
            for scale, r in s.iterrows():
                rows.append({"ridge": ridge, "refit": "on" if refit else "off", "scale": scale,
                             "MIO beta error": r.beta_error, "lme4 beta error": lme4.loc[scale, "beta_error"],
                             "MIO / lme4": r.beta_error / lme4.loc[scale, "beta_error"],
                             "zeros found": r.sparsity_recovery, "solve s": r.solve_s, "max gap": r.max_gap,
                             "data sets": int(r.data_sets)})
    out = pd.DataFrame(rows)
    base = out[(out.ridge == 1e-4) & (out.refit == "on")].set_index("scale")["zeros found"]
    out["zeros vs 1e-4"] = out["zeros found"] - out.scale.map(base)
    return out.set_index(["ridge", "refit", "scale"])


if __name__ == "__main__":
    t0 = time.perf_counter()
    print(f"## Real data: one certified fit per cell, time limit {time_limit:g} s\n")
    print(markdown_table(real_data_table()))
    print(f"\n## Simulation study: {reps} replicate(s) per scenario, sparse and Gaussian effects\n")
    print(markdown_table(simulation_table().reset_index().set_index("ridge")))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
