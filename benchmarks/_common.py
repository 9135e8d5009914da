"""Shared pieces of the benchmark scripts: data with the paper's shape, timing, printing."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


def clustered(K: int, n_per: int, p: int, n_nonzero: int, effect: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """Sparse cluster intercepts with covariates shifted by cluster (hidden confounding)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(K), n_per)
    gamma = np.zeros(K)
    gamma[rng.choice(K, n_nonzero, replace=False)] = rng.choice([-effect, effect], n_nonzero)
    shift = rng.normal(size=(K, p)) * 0.5
    X = rng.normal(size=(len(g), p)) + shift[g] + 0.5 * gamma[g][:, None]
    beta = rng.normal(size=p)
    y = X @ beta + gamma[g] + rng.normal(size=len(g))
    cols = {f"x{j + 1}": X[:, j] for j in range(p)}
    df = pd.DataFrame({"y": y, "g": g, **cols})
    rhs = " + ".join(cols) if p else "1"
    return df, f"y ~ {rhs} + (1 | g)"


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0
