"""The simulation design of the paper's section 3, with its ambiguities made parameters.

Data-generating process (hidden confounding): in cluster k the covariates are
X_ki ~ N_p(c gamma_k 1, I) with one scalar c ~ N(0, 1) per data set (the paper's c ~ N_q(0, I) with
q = 1; ``confounding="vector"`` draws c ~ N_p(0, I) instead, one loading per covariate), so they
carry the cluster's effect, and Y_ki = X_ki beta + gamma_k + eps_ki with eps ~ N(0, noise^2). Cluster effects are either sparse
(a share ``level`` of them exactly zero, the rest +1 or -1 with equal probability) or Gaussian
(gamma_k ~ N(0, level)). Scales: Low (K=4, p=10), Medium (K=10, p=25), High (K=14, p=35), 50 rows
per cluster. Choices the paper leaves open, each a parameter: beta ~ N(0, I) (``beta_scale``),
noise variance 1, the number of nonzero effects round((1 - share) K), and the split of each
cluster's rows into train / validation / test (60 / 20 / 20 %).

>>> sim = simulate_clustered("low", "sparse", 0.5, seed=1)
>>> sim.data.shape, int((sim.gamma != 0).sum()), sorted(sim.data.split.unique())
((200, 13), 2, ['test', 'train', 'validation'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..core.exceptions import HierMIOError
from ..data.splits import shuffled_clusters

__all__ = ["simulate_sparse", "simulate_confounded", "simulate_atypical", "SCALES", "SPARSE_SHARES",
           "GAUSSIAN_VARIANCES", "Simulation", "simulate_clustered", "scenarios", "true_icc", "beta_error",
           "gamma_error", "sparsity_recovery", "zeros_recovered"]

SCALES = {"low": (4, 10), "medium": (10, 25), "high": (14, 35)}
SPARSE_SHARES = (0.90, 0.80, 0.75, 0.66, 0.60, 0.50, 0.40, 0.33, 0.25, 0.20, 0.10, 0.0)
GAUSSIAN_VARIANCES = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)


@dataclass
class Simulation:
    """One simulated data set and the truth behind it."""

    data: pd.DataFrame  # columns y, g, x1..xp, split
    beta: np.ndarray  # (p,) true slopes (the intercept is 0)
    gamma: np.ndarray  # (K,) true cluster effects
    noise: float
    formula: str


def scenarios() -> list[dict]:
    """The paper's 66 scenarios: 3 scales x (12 sparse shares + 10 Gaussian variances).

    >>> len(scenarios()), scenarios()[0]
    (66, {'scale': 'low', 'effects': 'sparse', 'level': 0.9})
    """
    out = []
    for scale in SCALES:
        out += [{"scale": scale, "effects": "sparse", "level": s} for s in SPARSE_SHARES]
        out += [{"scale": scale, "effects": "gaussian", "level": v} for v in GAUSSIAN_VARIANCES]
    return out


def simulate_clustered(
    scale: Literal["low", "medium", "high"],
    effects: Literal["sparse", "gaussian"],
    level: float,
    n_per: int = 50,
    noise: float = 1.0,
    beta_scale: float = 1.0,
    split: tuple[float, float, float] = (0.6, 0.2, 0.2),
    confounding: Literal["shared", "vector"] = "shared",
    seed: int = 0,
) -> Simulation:
    """Draw one data set; ``level`` is the share of zero effects (sparse) or their variance (gaussian)."""
    if scale not in SCALES:
        raise HierMIOError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    if effects not in ("sparse", "gaussian"):
        raise HierMIOError(f"effects must be 'sparse' or 'gaussian', got {effects!r}")
    if effects == "sparse" and not 0 <= level <= 1:
        raise HierMIOError(f"the share of zero effects must lie in [0, 1], got {level!r}")
    if effects == "gaussian" and level < 0:
        raise HierMIOError(f"the variance of the effects must be non-negative, got {level!r}")
    if len(split) != 3 or abs(sum(split) - 1) > 1e-9 or min(split) < 0:
        raise HierMIOError(f"split must be three non-negative shares summing to 1, got {split!r}")
    if confounding not in ("shared", "vector"):
        raise HierMIOError(f"confounding must be 'shared' or 'vector', got {confounding!r}")
    K, p = SCALES[scale]
    rng = np.random.default_rng(seed)
    if effects == "sparse":
        gamma = np.zeros(K)
        n_nonzero = int(round((1 - level) * K))
        gamma[rng.choice(K, n_nonzero, replace=False)] = rng.choice([-1.0, 1.0], n_nonzero)
    else:
        gamma = rng.normal(0.0, np.sqrt(level), K)
    loading = rng.normal(size=p) if confounding == "vector" else np.full(p, rng.normal())
    beta = rng.normal(size=p) * beta_scale
    g = np.repeat(np.arange(K), n_per)
    X = rng.normal(size=(K * n_per, p)) + np.outer(gamma[g], loading)
    y = X @ beta + gamma[g] + rng.normal(0.0, noise, K * n_per)
    parts = np.empty(K * n_per, dtype=object)
    for idx in shuffled_clusters(g, rng):
        n_train, n_val = int(round(split[0] * n_per)), int(round(split[1] * n_per))
        parts[idx[:n_train]] = "train"
        parts[idx[n_train : n_train + n_val]] = "validation"
        parts[idx[n_train + n_val :]] = "test"
    cols = {f"x{j + 1}": X[:, j] for j in range(p)}
    data = pd.DataFrame({"y": y, "g": g, **cols, "split": parts})
    formula = "y ~ " + " + ".join(cols) + " + (1 | g)"
    return Simulation(data, beta, gamma, noise, formula)


def true_icc(sim: Simulation) -> float:
    """Cluster-effect variance over itself plus the noise variance, the effects taken as given
    (second moment about zero, as :attr:`MIOFit.icc` computes it)."""
    v = float(np.mean(sim.gamma**2))
    return v / (v + sim.noise**2)


def beta_error(sim: Simulation, fixef: pd.Series) -> float:
    """||beta - beta_hat||^2 over the slopes x1..xp (the paper's beta recovery)."""
    names = [f"x{j + 1}" for j in range(len(sim.beta))]
    return float(np.sum((sim.beta - fixef.reindex(names).to_numpy()) ** 2))


def gamma_error(sim: Simulation, effects: pd.Series, intercept: float = 0.0) -> float:
    """Mean over clusters of (gamma_k - (intercept + gamma_hat_k))^2 (levels missing count as 0).

    The cluster intercepts are compared, not the deviations alone: a fitted intercept absorbs the
    sample mean of the true effects, which is not identifiable apart from it (the true intercept is 0).
    """
    est = effects.reindex(range(len(sim.gamma))).fillna(0.0).to_numpy()
    return float(np.mean((sim.gamma - intercept - est) ** 2))


def sparsity_recovery(sim: Simulation, effects: pd.Series) -> float:
    """Share of the true zero effects estimated exactly zero (NaN when no effect is truly zero)."""
    zero = sim.gamma == 0
    if not zero.any():
        return float("nan")
    est = effects.reindex(range(len(sim.gamma))).fillna(0.0).to_numpy()
    return float(np.mean(est[zero] == 0))


def zeros_recovered(sim: Simulation, effects: pd.Series) -> float:
    """True zeros estimated exactly zero, as a share of all K clusters (the paper's Table A5).

    >>> sim = simulate_clustered("low", "sparse", 0.5, seed=1)
    >>> zeros_recovered(sim, pd.Series(sim.gamma)), sparsity_recovery(sim, pd.Series(sim.gamma))
    (0.5, 1.0)
    """
    est = effects.reindex(range(len(sim.gamma))).fillna(0.0).to_numpy()
    return float(np.sum((sim.gamma == 0) & (est == 0)) / len(sim.gamma))


def simulate_atypical(
    K: int = 12,
    n_per: int = 20,
    n_atypical: int = 3,
    effect: float = 1.5,
    feature_shift: float = 3.0,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Clusters of which ``n_atypical`` differ by ``effect``, told apart by a cluster-level feature.

    Columns y, g, x1, x2 and w, where w (constant within a cluster) is N(0, 1) shifted by
    ``feature_shift`` in the atypical clusters and is not in the formula ``y ~ x1 + x2 + (1 | g)``:
    a new cluster's effect is predictable from w (the "features" rule with ``cluster_features=["w"]``)
    but not from the fixed part. Returns the data and the true effects.

    >>> df, gamma = simulate_atypical(seed=1)
    >>> df.shape, int((gamma != 0).sum()), bool((df.groupby("g").w.nunique() == 1).all())
    ((240, 5), 3, True)
    """
    if not 0 <= n_atypical <= K:
        raise HierMIOError(f"n_atypical must lie in 0..K={K}, got {n_atypical!r}")
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(K), n_per)
    atypical = rng.choice(K, n_atypical, replace=False)
    gamma = np.zeros(K)
    gamma[atypical] = effect
    w = rng.normal(size=K)
    w[atypical] += feature_shift
    X = rng.normal(size=(len(g), 2))
    y = X @ np.array([1.0, -0.5]) + gamma[g] + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "g": g, "x1": X[:, 0], "x2": X[:, 1], "w": w[g]}), gamma


def simulate_sparse(K: int = 8, n_per: int = 12, n_nonzero: int = 3, slope: bool = False, seed: int = 0,
                    effect: float = 1.0, crossed: bool = False) -> pd.DataFrame:
    """Small clustered data for tests: y = 1 + 0.5 x + e_g (+ 0.7 e_g z with ``slope``) + noise,
    with ``n_nonzero`` of the K clusters shifted by +-``effect`` (and a crossed factor h).

    >>> df = simulate_sparse(K=4, n_per=3)
    >>> df.shape, sorted(df.columns)
    ((12, 4), ['g', 'x', 'y', 'z'])
    """
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(K), n_per)
    n = len(g)
    df = pd.DataFrame({"g": g, "x": rng.normal(size=n), "z": rng.normal(size=n)})
    eff = np.zeros(K)
    eff[rng.choice(K, n_nonzero, replace=False)] = rng.choice([-1.0, 1.0], n_nonzero) * effect
    y = 1.0 + 0.5 * df.x + eff[g] + rng.normal(size=n)
    if slope:
        y = y + 0.7 * eff[g] * df.z
    if crossed:
        df["h"] = rng.integers(0, 4, n)
        y = y + np.array([0.0, 0.8, 0.0, -0.5])[df.h]
    df["y"] = y
    return df


def simulate_confounded(K: int, n_per: int, p: int, n_nonzero: int, effect: float = 1.0,
                        seed: int = 0) -> tuple[pd.DataFrame, str]:
    """Benchmark data: sparse cluster intercepts (+-``effect``) with p covariates shifted by cluster
    (hidden confounding), and its formula.

    >>> df, formula = simulate_confounded(K=3, n_per=2, p=2, n_nonzero=1)
    >>> df.shape, formula
    ((6, 4), 'y ~ x1 + x2 + (1 | g)')
    """
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
