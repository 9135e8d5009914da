"""How often does cross-validation pick a budget near the true number of atypical clusters?

20 seeds of clustered data (12 clusters, 3 with an effect, covariates shifted by cluster), budgets
0..8 chosen by 4-fold CV; prints the tally of |chosen - 3| <= 2 for each scheme. Held-out clusters
(scheme "cluster") are predicted with the soft rule. Usage: python benchmarks/bench_cv_tally.py [seeds]
"""

import sys

import numpy as np

import hiermio as hm
from _common import clustered

seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
truth = 3
for scheme in ("within", "cluster"):
    chosen = []
    for seed in range(seeds):
        df, formula = clustered(K=12, n_per=20, p=3, n_nonzero=truth, effect=1.5, seed=seed)
        res = hm.cv(formula, df, budgets=range(0, 9), scheme=scheme, folds=4, random_state=seed,
                    new_levels="soft", progress=False)
        chosen.append(res.best_budget_)
    hits = int(np.sum(np.abs(np.array(chosen) - truth) <= 2))
    print(f"scheme {scheme:>7}: chosen budgets {chosen}; within +-2 of {truth}: {hits}/{seeds}")
