"""How often does cross-validation pick a budget near the true number of atypical clusters?

20 seeds per setting, budgets 0..8, 4 folds; prints the tally of |chosen - 3| <= 2.
- "within" (the paper's scheme): 12 clusters, 3 with an effect, covariates shifted by cluster.
- "cluster" (held-out clusters) on data whose atypical clusters a cluster-level feature w tells
  apart (``simulate_atypical``), scored with the "features" rule on w, rules 1se and min.
- "cluster" on the confounded data, scored with the soft rule: there the covariates already carry
  the cluster effect through the fixed part, so new clusters are predicted best with budget 0 and
  the scheme picks small budgets. It is printed to show that limit, not as a target.
Usage: python benchmarks/bench_cv_tally.py [seeds]
"""

import sys

import numpy as np

import hiermio as hm
from _common import clustered
from hiermio.paper.simulate import simulate_atypical

seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
truth = 3


def tally(label, make, **cv_args):
    chosen = []
    for seed in range(seeds):
        df, formula = make(seed)
        res = hm.cv(formula, df, budgets=range(0, 9), folds=4, random_state=seed, progress=False, **cv_args)
        chosen.append(res.best_budget_)
    hits = int(np.sum(np.abs(np.array(chosen) - truth) <= 2))
    print(f"{label:<48} chosen {chosen}; within +-2 of {truth}: {hits}/{seeds}")


def confounded(seed):
    return clustered(K=12, n_per=20, p=3, n_nonzero=truth, effect=1.5, seed=seed)


def featured(seed):
    return simulate_atypical(K=12, n_per=20, n_atypical=truth, seed=seed)[0], "y ~ x1 + x2 + (1 | g)"


tally("within, confounded data, min", confounded, scheme="within")
tally("cluster, feature w, 'features' rule, 1se", featured, scheme="cluster", rule="1se",
      new_levels="features", cluster_features=["w"])
tally("cluster, feature w, 'features' rule, min", featured, scheme="cluster", rule="min",
      new_levels="features", cluster_features=["w"])
tally("cluster, confounded data, 'soft' rule, min", confounded, scheme="cluster", new_levels="soft")
