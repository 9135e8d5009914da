"""Peers on the same pure L0-ridge problem: hiermio vs abess (heuristic) and l0bnb (certified).

Problem: y ~ 0 + (1 + z | g), column selection, one budget, one ridge weight mu for all columns:
min ||y - Z g||^2 + mu ||g||^2 s.t. ||g||_0 <= budget. abess gets alpha = mu / (2n) and l0bnb
lambda_2 = mu / 2, both without intercept, so that their objectives equal this one. l0bnb solves the
penalized form along a path of lambda_0; a path point with k nonzeros is optimal for budget k.

The peers need numpy<2 (l0bnb), so they run in their own virtual environment, made on first use
in benchmarks/.peers-venv (pip: numpy<2, l0bnb, abess). Each peer's support is scored with
hiermio's exact evaluator. Usage: python benchmarks/bench_peers.py [K] [budget]
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hiermio.formula.design import build_design
from hiermio.solve.heuristics import greedy, local_search
from hiermio.solve.oa import SolverOptions, solve
from hiermio.problem.selection import SelectionProblem
from hiermio.formula.design import random_design_matrix

K = int(sys.argv[1]) if len(sys.argv) > 1 else 30
budget = int(sys.argv[2]) if len(sys.argv) > 2 else 6
time_limit = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
here = Path(__file__).resolve().parent
venv = here / ".peers-venv"
if not (venv / "bin" / "python").exists():
    print("creating the peers' environment (numpy<2, l0bnb, abess) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "numpy<2", "l0bnb", "abess"], check=True)

rng = np.random.default_rng(0)
n_per = 20
g = np.repeat(np.arange(K), n_per)
z = rng.normal(size=len(g))
a, b = np.zeros(K), np.zeros(K)
hit = rng.choice(K, budget, replace=False)
a[hit[: budget // 2]] = rng.choice([-1, 1], budget // 2) * 0.6
b[hit[budget // 2 :]] = rng.choice([-1, 1], budget - budget // 2) * 0.6
df = pd.DataFrame({"g": g, "z": z, "y": a[g] + b[g] * z + rng.normal(size=len(g))})
design = build_design("y ~ 0 + (1 + z | g)", df)
mu = float(n_per) * 0.1
problem = SelectionProblem.build(design, budget, np.full(design.n_columns, mu))

t0 = time.perf_counter()
start = local_search(problem, greedy(problem))
t_first = time.perf_counter() - t0
support, cert = solve(problem, [start], SolverOptions(gap=0.0, time_limit=time_limit))
t_cert = time.perf_counter() - t0
optimum = cert.primal

Z = random_design_matrix(design).toarray()
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "problem.npz"
    np.savez(path, Z=Z, y=design.y, mu=mu, budget=budget, time_limit=time_limit)
    run = subprocess.run([str(venv / "bin" / "python"), str(here / "_peers_worker.py"), str(path)],
                         capture_output=True, text=True)
if run.returncode != 0:
    sys.exit(f"peer run failed:\n{run.stderr[-2000:]}")
peers = json.loads(run.stdout.strip().splitlines()[-1])


def score(cols):
    s = np.zeros(problem.n_units)
    s[cols] = 1.0
    return problem.value(s)


print(f"pure L0-ridge: n={design.n}, columns={design.n_columns}, budget={budget}, mu={mu:g}")
print(f"{'method':>10} {'objective':>14} {'vs optimum':>11} {'time to this objective':>24} {'time to certificate':>20}")
print(f"{'hiermio':>10} {optimum:>14.6f} {0:>10.2e} {t_first:>22.3f} s {t_cert:>18.3f} s  "
      f"({cert.status}, gap {100 * cert.gap:.2g}%)")
for name in ("abess", "l0bnb"):
    val = score(peers[name]["support"])
    cert_time = f"{peers[name]['time']:>18.3f} s" if name == "l0bnb" else f"{'(heuristic)':>20}"
    print(f"{name:>10} {val:>14.6f} {(val - optimum) / optimum:>10.2e} {peers[name]['time']:>22.3f} s {cert_time}")
print("ratios (peer time / hiermio time to certificate): "
      + ", ".join(f"{k} {peers[k]['time'] / t_cert:.2f}" for k in ("abess", "l0bnb")))
