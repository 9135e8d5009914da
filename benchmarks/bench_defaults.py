"""Default settings on the data sets of the refit issue: does each certify, and how fast, beside lme4?

Prints one row per case: hiermio's status, wall time and gap at its defaults (ridge 1, 60 s limit),
and lme4's lmer time on the same formula in the same process (the ratio is hiermio / lme4).

    python benchmarks/bench_defaults.py
"""

from __future__ import annotations

import time
import warnings

import pandas as pd

import hiermio as hm
from _common import clustered, real_data_cases

big, big_formula = clustered(K=1000, n_per=50, p=5, n_nonzero=50, seed=0)
hard, hard_formula = clustered(K=1000, n_per=50, p=5, n_nonzero=50, effect=0.5, seed=0)
CASES = [
    *real_data_cases(),
    ("1,000 clusters x 50 rows, effects +-1, budget 50", big_formula, big, 50),
    ("1,000 clusters x 50 rows, effects +-0.5, budget 50", hard_formula, hard, 50),
]

rows = []
for label, formula, df, budget in CASES:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hm.HierMIOWarning)
        t0 = time.perf_counter()
        fit = hm.fit(formula, df, budget, progress=False)
        wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = hm.lmer(formula, df)
    lme4_s = time.perf_counter() - t0
    c = fit.certificate
    rows.append({"case": label, "status": c.status, "hiermio s": round(wall, 2), "gap %": float(f"{100 * c.gap:.2g}"),
                 "lme4 s": round(lme4_s, 2), "hiermio / lme4": round(wall / lme4_s, 2), "lme4 status": ref.status})
print(pd.DataFrame(rows).set_index("case").to_string())
