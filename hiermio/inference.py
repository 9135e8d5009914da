"""Standard errors of the fixed effects: cluster-robust (the default in the summary) and conditional.

The conditional covariance treats the support as known and every unselected cluster as exactly the
population: sigma^2 (X'(I + Z_S Z_S'/mu)^{-1} X)^{-1}. For a cluster-level covariate that is far too
optimistic (Exam's ``schavg``: SE 0.043 against 0.185 by the cluster bootstrap), because whatever
the unselected clusters deviate is left in the residuals, correlated within each cluster.

The cluster-robust (sandwich, CR1) covariance allows any correlation within a cluster. For the
estimator theta = (D'WD + P)^{-1} D'Wy with D = [X : Z_S] (the fixed part and the selected
columns), residuals e and clusters g = 1..G,

    V = c (D'WD + P)^{-1} [sum_g D_g'W_g e_g e_g' W_g D_g] (D'WD + P)^{-1},
    c = G/(G - 1) (n - 1)/(n - k),  k = p + |S|,

which is statsmodels' ``cov_type="cluster"`` (with its small-sample correction) when P = 0. The
fixed effects' block is reported, with t statistics on G - 1 degrees of freedom.

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
>>> cr = cluster_robust(fit)
>>> cr.cluster, cr.n_clusters, cr.cov.shape
('Subject', 18, (2, 2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .design import random_design_matrix
from .exceptions import HierMIOError

if TYPE_CHECKING:
    from .results import MIOFit

__all__ = ["RobustCovariance", "cluster_robust", "default_cluster", "support_system"]


@dataclass(frozen=True)
class RobustCovariance:
    """The fixed effects' cluster-robust covariance, and what it was clustered by."""

    cov: np.ndarray  # (p, p)
    cluster: str  # the grouping factor
    n_clusters: int

    @property
    def df(self) -> int:
        """Degrees of freedom of the t statistics: clusters - 1."""
        return self.n_clusters - 1


def support_system(fit: "MIOFit") -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """D = [X : Z_S] (the fixed part and the selected columns), the prior weights w, and the
    penalised cross product A = D'WD + P whose inverse the reported estimates solve with (P: the
    refit's tiny ridge on the selected columns, or the selection's ridge with ``refit=False``).

    >>> import hiermio as hm
    >>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
    >>> D, w, A = support_system(fit)
    >>> D.shape, A.shape
    ((180, 6), (6, 6))
    """
    d = fit.design
    cols = np.flatnonzero(fit.gamma != 0)
    D = sp.hstack([sp.csc_matrix(d.X), random_design_matrix(d).tocsc()[:, cols]]).tocsc()
    w = d.weights if d.weights is not None else np.ones(d.n)
    penalty = np.concatenate([np.zeros(d.p), fit.estimate_mu[cols]])
    return D, w, (D.T @ sp.diags(w) @ D).toarray() + np.diag(penalty)


def default_cluster(fit: "MIOFit") -> str:
    """The coarsest grouping factor (fewest levels): nested factors are clustered by the outer one."""
    terms = fit.design.group_terms
    if not terms:
        raise HierMIOError("cluster-robust standard errors need a grouping factor; the model has none")
    return min(terms, key=lambda t: t.n_levels).term.group_name


def cluster_robust(fit: "MIOFit", cluster: str | None = None) -> RobustCovariance:
    """CR1 covariance of the fixed effects, clustered by ``cluster`` (a grouping factor's name;
    default: the coarsest)."""
    d = fit.design
    name = cluster if cluster is not None else default_cluster(fit)
    term = next((t for t in d.group_terms if t.term.group_name == name or t.term.group == name), None)
    if term is None:
        raise HierMIOError(f"cluster must name a grouping factor of the model, one of "
                           f"{[t.term.group_name for t in d.group_terms]}; got {name!r}")
    codes, G = term.codes, term.n_levels
    if G < 2:
        raise HierMIOError(f"cluster-robust standard errors need at least 2 clusters; {name!r} has {G}")
    D, w, A = support_system(fit)
    e = fit.residuals().to_numpy()
    bread = np.linalg.solve(A, np.eye(A.shape[0]))
    indicator = sp.csr_matrix((np.ones(d.n), (codes, np.arange(d.n))), shape=(G, d.n))
    scores = np.asarray((indicator @ sp.diags(w * e) @ D).todense())  # (G, k)
    n, k = d.n, D.shape[1]
    c = G / (G - 1) * (n - 1) / max(n - k, 1)
    V = c * bread @ (scores.T @ scores) @ bread
    return RobustCovariance(V[: d.p, : d.p], name, G)
