"""Cost of one evaluation of c(s) and its gradient (one cut) does not grow with n.

Same clusters (K levels, random intercept and slope), n = 5,000 and n = 50,000 rows; the ratio of
the mean evaluation time must stay near 1 (issue target: <= 1.5). The one-off pass over the rows
that forms the sufficient statistics is timed separately.
"""

import numpy as np
import pandas as pd

from hiermio.fitting.api import default_mu
from hiermio.formula.design import build_design
from hiermio.problem.sufficient import SufficientStats
from _common import timed

K, p, reps = 500, 10, 200
rng = np.random.default_rng(0)
rows = []
for n in (5_000, 50_000):
    g = np.arange(n) % K
    df = pd.DataFrame({f"x{j}": rng.normal(size=n) for j in range(p)}).assign(g=g, z=rng.normal(size=n))
    df["y"] = df.x0 + rng.normal(size=n)
    design = build_design("y ~ " + " + ".join(f"x{j}" for j in range(p)) + " + (1 + z | g)", df)
    stats, t_stats = timed(SufficientStats.from_design, design, default_mu(design, 0.1))
    supports = [(rng.random(design.n_columns) < 0.2).astype(float) for _ in range(reps)]
    _, t_eval = timed(lambda: [stats.evaluate(s) for s in supports])
    rows.append((n, t_stats, t_eval / reps))
    print(f"n={n:>6}: sufficient statistics {t_stats * 1e3:8.1f} ms once; one evaluation {t_eval / reps * 1e6:8.1f} us")
ratio = rows[1][2] / rows[0][2]
print(f"per-cut time ratio n=50,000 / n=5,000 (K={K}, q=2, p={p + 1}): {ratio:.2f}  (target <= 1.5)")
