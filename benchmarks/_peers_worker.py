"""Runs in the peers' own environment (numpy<2 for l0bnb): fits abess and l0bnb, prints JSON.

Input: an .npz with Z (n x m), y, mu (uniform ridge weight) and budget. Both peers are asked for
the objective ||y - Z g||^2 + mu ||g||^2 with at most `budget` nonzeros and no intercept.
"""

import json
import sys
import time

import numpy as np

data = np.load(sys.argv[1])
Z, y, mu, budget = data["Z"], data["y"], float(data["mu"]), int(data["budget"])
n = len(y)
out = {}

from abess import LinearRegression  # noqa: E402

t0 = time.perf_counter()
model = LinearRegression(support_size=budget, alpha=mu / (2 * n), fit_intercept=False).fit(Z, y)
out["abess"] = {"time": time.perf_counter() - t0, "support": np.flatnonzero(model.coef_).tolist()}

from l0bnb import fit_path  # noqa: E402

# compile l0bnb's numba kernels on a toy problem first, so that only solving is timed
_rng = np.random.default_rng(0)
fit_path(_rng.normal(size=(30, 8)), _rng.normal(size=30), lambda_2=1.0, max_nonzeros=2, intercept=False,
         normalize=False)
t0 = time.perf_counter()
path = fit_path(Z, y, lambda_2=mu / 2, max_nonzeros=budget, intercept=False, normalize=False, gap_tol=1e-4,
                time_limit=float(data["time_limit"]))
elapsed = time.perf_counter() - t0
points = [(int(np.count_nonzero(p["B"])), np.flatnonzero(p["B"]).tolist()) for p in path]
best = max((p for p in points if p[0] <= budget), default=(0, []))
out["l0bnb"] = {"time": elapsed, "support": best[1], "path_sizes": [p[0] for p in points]}
print(json.dumps(out))
