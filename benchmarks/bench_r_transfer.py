"""Moving data to R for lme4: transfer time vs lmer's own fit time, 50,000 rows x 35 covariates.

The transfer sends only the columns the formula uses, column by column from numpy arrays.
Target: the ratio transfer / lmer fit stays below 1.
"""

import time

from hiermio.comparisons.lme4 import _to_r_frame, _used_columns, lmer
from _common import clustered

df, formula = clustered(K=500, n_per=100, p=35, n_nonzero=50, seed=0)
cols = _used_columns(formula, df)
_to_r_frame(df.head(10), cols)  # load R and rpy2 before timing
reps = 3
t0 = time.perf_counter()
for _ in range(reps):
    _to_r_frame(df, cols)
t_transfer = (time.perf_counter() - t0) / reps
ref = lmer(formula, df)
print(f"rows {len(df)}, columns sent {len(cols)}; lmer status {ref.status}")
print(f"transfer {t_transfer:.3f} s; lmer fit {ref.time:.3f} s; ratio transfer / fit {t_transfer / ref.time:.3f} (target < 1)")
