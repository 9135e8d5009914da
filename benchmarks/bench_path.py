"""The warm-started path over budgets 0..K (K = 100 clusters) against one fit at the chosen budget.

Target (issue): the whole path costs at most 10x the single fit. Each fit has the same time limit
and gap. Usage: python benchmarks/bench_path.py [time_limit_per_fit] [gap]
"""

import sys
import time

import hiermio as hm
from _common import clustered

time_limit = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
gap = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-4
ridge = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
df, formula = clustered(K=100, n_per=20, p=3, n_nonzero=10, effect=1.0, seed=0)
t0 = time.perf_counter()
p = hm.path(formula, df, budgets=range(0, 101), time_limit=time_limit, gap=gap, ridge=ridge, progress=False)
t_path = time.perf_counter() - t0
t1 = time.perf_counter()
one = hm.fit(formula, df, budget=10, time_limit=time_limit, gap=gap, ridge=ridge, progress=False)
t_one = time.perf_counter() - t1
status = p.table.status.value_counts().to_dict()
print(f"K=100, n={len(df)}, budgets 0..100, time limit {time_limit:g} s and gap {gap:g} per fit")
print(f"path: {t_path:.1f} s for 101 fits (statuses {status}); largest gap {100 * p.table.gap.max():.3g}%")
print(f"one fit at budget 10: {t_one:.2f} s ({one.certificate.status}); ratio path / one fit {t_path / t_one:.1f} (target <= 10)")
