"""Paper scale (14 clusters, 35 covariates, 50 rows each): certified MIO fit vs lme4's lmer.

Both run in this process (lme4 through rpy2); the ratio is hiermio wall time / lmer wall time,
so below 1 means the certified fit is faster. Usage: python benchmarks/bench_paper_scale.py [reps]
"""

import sys

import numpy as np

import hiermio as hm
from _common import clustered, timed

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
try:
    hm.lmer("y ~ x + (1 | g)", __import__("pandas").DataFrame({"y": [1., 2, 3, 4], "x": [0., 1, 0, 1], "g": [0, 0, 1, 1]}))
    have_r = True
except hm.RNotAvailableError as exc:
    print(f"lme4 not available ({exc}); printing hiermio times only")
    have_r = False

print(f"{'scenario':>24} {'budget':>6} {'status':>10} {'gap':>8} {'MIO s':>8} {'lmer s':>8} {'ratio':>7}")
ratios = []
for sparsity, n_nonzero in [("90% zero", 1), ("64% zero", 5), ("0% zero", 14)]:
    for rep in range(reps):
        df, formula = clustered(K=14, n_per=50, p=35, n_nonzero=n_nonzero, seed=rep)
        budget = max(n_nonzero, 1)
        fit, t_mio = timed(hm.fit, formula, df, budget=budget, gap=0.0)
        t_lmer = np.nan
        if have_r:
            ref, t_lmer = timed(hm.lmer, formula, df)
        ratio = t_mio / t_lmer if have_r else np.nan
        ratios.append(ratio)
        c = fit.certificate
        print(f"{sparsity + ' rep ' + str(rep):>24} {budget:>6} {c.status:>10} {100 * c.gap:>7.3g}% "
              f"{t_mio:>8.3f} {t_lmer:>8.3f} {ratio:>7.2f}")
if have_r:
    print(f"median ratio MIO/lmer over {len(ratios)} fits: {np.nanmedian(ratios):.2f} (max {np.nanmax(ratios):.2f})")
