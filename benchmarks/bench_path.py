"""The budget path over 0..K (K = 100 clusters) against one certified fit at the chosen budget.

Target (issue #4): the whole path costs at most 10x one fit at the chosen budget. The path runs
as a screening sweep (``certify=False``: warm-started heuristic supports, each with the gap
proven by the continuous relaxation), chooses the budget on held-out rows, and the one fit at that
budget is certified by branch-and-bound. For the same budgets near the choice, the screening
supports are compared with certified ones. ``full`` also times the path with every budget
certified (each to the gap within the time limit), which is what blows the target.
Usage: python benchmarks/bench_path.py [ridge] [time_limit] [full]
"""

import sys
import time

import numpy as np

import hiermio as hm
from _common import clustered

ridge = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
time_limit = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
full = len(sys.argv) > 3 and sys.argv[3] == "full"
df, formula = clustered(K=100, n_per=20, p=3, n_nonzero=10, effect=1.0, seed=0)
train, valid = hm.train_test_split_clusters(df, "g", "within", test_size=0.25, random_state=0)
opts = dict(ridge=ridge, time_limit=time_limit, progress=False)

t0 = time.perf_counter()
p = hm.path(formula, train, budgets=range(0, 101), validation=valid, certify=False, **opts)
t_path = time.perf_counter() - t0
chosen = int(p.table.validation_mse.idxmin())
t1 = time.perf_counter()
one = hm.fit(formula, train, budget=chosen, **opts)
t_one = time.perf_counter() - t1
print(f"K=100, n={len(train)} training rows, ridge {ridge:g}, budgets 0..100; true number of atypical clusters 10")
print(f"screening path: {t_path:.2f} s for 101 budgets; largest relaxation gap {100 * p.table.gap.max():.3g}% "
      f"(median {100 * p.table.gap.median():.3g}%); validation picks budget {chosen}")
print(f"one certified fit at budget {chosen}: {t_one:.2f} s ({one.certificate.status}, gap {100 * one.certificate.gap:.3g}%)")
print(f"ratio path / one fit: {t_path / t_one:.2f} (target <= 10)")
same = []
for b in range(max(0, chosen - 2), chosen + 3):
    exact = one if b == chosen else hm.fit(formula, train, budget=b, **opts)
    screen = p.fits[b]
    rel = (screen.certificate.primal - exact.certificate.primal) / exact.certificate.primal
    same.append(bool(np.array_equal(screen.support, exact.support)))
    print(f"  budget {b}: screening objective {screen.certificate.primal:.6f}, certified {exact.certificate.primal:.6f} "
          f"({exact.certificate.status}); relative excess {rel:.2e}; same support: {same[-1]}")
print(f"screening support equals the certified one at {sum(same)}/{len(same)} budgets around the choice")
if full:
    t2 = time.perf_counter()
    pf = hm.path(formula, train, budgets=range(0, 101), **opts)
    t_full = time.perf_counter() - t2
    print(f"certified path: {t_full:.1f} s (statuses {pf.table.status.value_counts().to_dict()}); "
          f"ratio to one fit {t_full / t_one:.1f}")
