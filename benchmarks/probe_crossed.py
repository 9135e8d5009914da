"""Crossed factors (InstEval): how the proven gap closes with time, and why the bounds that certify
one grouping factor do not carry over.

1. The search on ``y ~ 1 + (1 | s) + (1 | d)``, budget 100 per factor, ridge 1, for ``--limit``
   seconds (default 300): the primal, dual and gap at fixed times, read from the progress callback.
2. The coupling between the factors. Given the fixed effects, one factor alone is separable (the
   best support is a sort); crossed, student j's and lecturer l's effects share c_jl rows. On the
   scale of the diagonal (a_j = n_j + mu), the coupling of lecturer l with any 100 students is at
   most the sum of its 100 largest c_jl / sqrt(a_j a_l). Where that sum reaches 1, no separable
   (diagonal) quadratic bounds the fit below on supports of the budget's size, so a decomposition
   of the bound by factor has nothing to stand on.

    python benchmarks/probe_crossed.py [--limit 300]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

import hiermio as hm

LIMIT = float(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else 300.0
data = hm.load_dataset("InstEval")
formula, budget = "y ~ 1 + (1 | s) + (1 | d)", 100

trace: list[hm.SolverProgress] = []
with warnings.catch_warnings():
    warnings.simplefilter("ignore", hm.HierMIOWarning)
    t0 = time.perf_counter()
    fit = hm.fit(formula, data, budget, time_limit=LIMIT, progress=False, callback=trace.append)
    wall = time.perf_counter() - t0
c = fit.certificate
rows = []
for at in [t for t in (3, 10, 30, 60, 120, 300, 600, 1200) if t <= LIMIT] + [LIMIT]:
    seen = [p for p in trace if p.elapsed <= at]
    if seen:
        p = seen[-1]
        rows.append({"seconds": at, "nodes": p.nodes, "primal": p.primal, "dual": p.dual, "gap %": 100 * p.gap})
print(f"InstEval {formula}, budget {budget} per factor, ridge 1, limit {LIMIT:g} s: {c.status}, "
      f"gap {100 * c.gap:.3g}% ({100 * c.signal_gap:.3g}% of what the effects explain), {c.nodes} nodes, "
      f"wall {wall:.1f} s")
print(pd.DataFrame(rows).drop_duplicates("seconds", keep="last").to_string(index=False, float_format="%.6g"))

# the coupling of the two factors, on the scale of the diagonal
d = hm.build_design(formula, data)
(ts, td) = d.terms
n_s, n_d = np.bincount(ts.codes), np.bincount(td.codes)
a_s, a_d = n_s + 1.0 * np.median(n_s), n_d + 1.0 * np.median(n_d)  # ridge 1: mu = the median level size
C = sp.csr_matrix((np.ones(d.n), (ts.codes, td.codes)), shape=(len(n_s), len(n_d)))
scaled = sp.diags(1 / np.sqrt(a_s)) @ C @ sp.diags(1 / np.sqrt(a_d))
col = scaled.tocsc()
coupling = np.array([np.sort(col.data[col.indptr[k]:col.indptr[k + 1]])[::-1][:budget].sum() for k in range(len(n_d))])
row = scaled.tocsr()
coupling_s = np.array([np.sort(row.data[row.indptr[j]:row.indptr[j + 1]])[::-1][:budget].sum()
                       for j in range(len(n_s))])
print()
print(pd.DataFrame({
    "levels": [len(n_d), len(n_s)],
    "median coupling": [np.median(coupling), np.median(coupling_s)],
    "90th percentile": [np.quantile(coupling, 0.9), np.quantile(coupling_s, 0.9)],
    "max": [coupling.max(), coupling_s.max()],
    "share >= 1": [np.mean(coupling >= 1), np.mean(coupling_s >= 1)],
}, index=["lecturers d (with 100 students)", "students s (with 100 lecturers)"]).to_string(float_format="%.3g"))
