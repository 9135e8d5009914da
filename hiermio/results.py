"""The fitted model: estimates under lme4's names, predictions and an lme4-style summary.

Definitions used throughout (they are not lme4's, since no distribution is assumed):

* cluster effects are the ridge estimates at the selected support, exactly as the optimisation
  produced them (no refit);
* ``sigma`` is sqrt(RSS / (n - p - number of nonzero cluster-effect columns));
* ``VarCorr`` gives, per grouping factor, the second moments about zero of the fitted effects over
  all levels (zeros included): a level that does not differ from the population counts as 0;
* ``icc`` per grouping factor is v / (v + sigma^2) with v that factor's intercept variance from
  ``VarCorr``: the share of variance at x = 0 explained by the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .control import FitControl
from .design import Design
from .exceptions import DataError, HierMIOError
from .newclusters import RULES, cluster_means, fit_assignment_tree, fit_feature_tree, hard_effects, soft_effects
from .certificate import Certificate
from .selection import SelectionProblem
from .design import random_design_matrix

__all__ = ["MIOFit", "Summary"]

_POPULATION = (False, "NA", "~0", "~ 0", 0)


@dataclass
class MIOFit:
    """Result of :func:`hiermio.fit`: estimates, certificate, predictions and summary.

    >>> import hiermio as hm
    >>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
    >>> fit.fixef().round(1).to_dict()
    {'(Intercept)': 259.1, 'Days': 10.5}
    >>> sum(len(v) for v in fit.selected.values())
    4
    """

    design: Design = field(repr=False)
    problem: SelectionProblem = field(repr=False)
    support: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    mu: np.ndarray = field(repr=False)
    ridge: float
    rss: float
    fixed_cov_unscaled: np.ndarray = field(repr=False)  # Cov(beta) / sigma^2 at the support
    certificate: Certificate
    timings: dict[str, float] = field(default_factory=dict)  # seconds: design, first_solution, search, total
    control: FitControl | None = field(default=None, repr=False)  # the options of the fit
    # everything the user was warned about: dropped rows and columns, then the solver's notes
    warnings: list[str] = field(default_factory=list, repr=False)
    solver_warnings: list[str] = field(default_factory=list, repr=False)
    tree_depth: int | None = None  # depth of the new-cluster trees; None: ceil(log2 K)
    _feature_trees: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ lme4 names
    @property
    def formula(self) -> str:
        return self.design.formula.text

    @property
    def nobs(self) -> int:
        return self.design.n

    def fixef(self) -> pd.Series:
        """Fixed effects (unpenalized), by column name."""
        return pd.Series(self.beta, index=list(self.design.fixed_names), name="fixef")

    def _term_effects(self, k: int) -> pd.DataFrame:
        t = self.design.terms[k]
        off = self.design.term_offsets()[k]
        block = self.gamma[off : off + t.n_columns].reshape(t.n_levels, t.q)
        return pd.DataFrame(block, index=t.levels, columns=list(t.coef_names))

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Cluster effects by grouping factor: one row per level, one column per coefficient."""
        out: dict[str, pd.DataFrame] = {}
        for k, t in enumerate(self.design.terms):
            eff = self._term_effects(k)
            g = t.term.group_name
            out[g] = eff if g not in out else out[g].join(eff, how="outer", rsuffix=f" [{t.term.label}]")
        for g in out:
            out[g].index.name = g
        return out

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per-level coefficients: fixed effects plus that level's cluster effects (as in lme4)."""
        fe = self.fixef()
        out = {}
        for g, re in self.ranef().items():
            frame = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for c in re.columns:
                if c in frame.columns:
                    frame[c] = frame[c] + re[c]
                else:
                    frame[c] = re[c]
            out[g] = frame
        return out

    @property
    def n_nonzero(self) -> int:
        return int(np.count_nonzero(self.gamma))

    @property
    def df_residual(self) -> int:
        return self.nobs - self.design.p - self.n_nonzero

    @property
    def sigma(self) -> float:
        """Residual standard deviation, sqrt(RSS / (n - p - nonzero effects))."""
        return float(np.sqrt(self.rss / max(self.df_residual, 1)))

    def VarCorr(self) -> pd.DataFrame:  # noqa: N802 - lme4's name
        """Variance and correlation of the fitted cluster effects, and the residual variance."""
        rows = []
        for g, re in self.ranef().items():
            M = re.to_numpy()
            cov = M.T @ M / len(M)
            sd = np.sqrt(np.diag(cov))
            for i, name in enumerate(re.columns):
                corr = [cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan for j in range(i)]
                rows.append({"Groups": g, "Name": name, "Variance": cov[i, i], "Std.Dev.": sd[i],
                             "Corr": corr, "Nonzero": int(np.count_nonzero(M[:, i])), "Levels": len(M)})
        rows.append({"Groups": "Residual", "Name": "", "Variance": self.sigma**2, "Std.Dev.": self.sigma,
                     "Corr": [], "Nonzero": np.nan, "Levels": np.nan})
        return pd.DataFrame(rows)

    @property
    def icc(self) -> pd.Series:
        """Intra-cluster correlation per grouping factor (intercept variance share)."""
        vc = self.VarCorr()
        out = {}
        for g in self.ranef():
            row = vc[(vc.Groups == g) & (vc.Name == "(Intercept)")]
            v = float(row.Variance.iloc[0]) if len(row) else np.nan
            out[g] = v / (v + self.sigma**2) if len(row) else np.nan
        return pd.Series(out, name="icc", dtype=float)

    @property
    def selected(self) -> dict[str, list]:
        """Levels with a nonzero effect, per random term."""
        out = {}
        for k, t in enumerate(self.design.terms):
            eff = self._term_effects(k)
            out[t.term.label] = list(eff.index[(eff != 0).any(axis=1)])
        return out

    @property
    def budgets(self) -> dict[str, int]:
        return dict(zip(self.problem.group_names, self.problem.budgets.tolist()))

    # ------------------------------------------------------------------ fitted values
    def fitted(self) -> pd.Series:
        d = self.design
        Z = random_design_matrix(d)
        off = d.offset if d.offset is not None else 0.0
        return pd.Series(d.X @ self.beta + Z @ self.gamma + off, index=d.rows, name="fitted")

    def residuals(self) -> pd.Series:
        return pd.Series(self.design.y, index=self.design.rows) - self.fitted()

    @cached_property
    def assignment_tree_(self) -> dict[str, Any]:
        """Per grouping factor, the CART classifier from fixed-part covariates to training levels.

        Print one with ``sklearn.tree.export_text(tree, feature_names=list(fit.design.fixed_names))``.
        """
        return {t.term.group_name: fit_assignment_tree(self.design.X, t.codes, t.n_levels, self.tree_depth)
                for t in _unique_groups(self.design)}

    def _feature_frame(self, data: pd.DataFrame, X: np.ndarray, columns: Sequence[str] | None) -> pd.DataFrame:
        if columns is None:  # the fixed-part covariates, intercept left out
            names = [n for n in self.design.fixed_names if n != "(Intercept)"]
            keep = [i for i, n in enumerate(self.design.fixed_names) if n != "(Intercept)"]
            return pd.DataFrame(X[:, keep], columns=names, index=data.index)
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise DataError(f"cluster_features names column(s) {missing} that the data does not have")
        bad = [c for c in columns if not pd.api.types.is_numeric_dtype(data[c])]
        if bad:
            raise DataError(f"cluster_features column(s) {bad} must be numeric")
        frame = data[list(columns)].astype(float)
        holes = [c for c in columns if frame[c].isna().any()]
        if holes:
            raise DataError(f"cluster_features column(s) {holes} have missing values; the 'features' rule needs "
                            "every cluster's features")
        return frame

    def _feature_tree(self, k: int, columns: Sequence[str] | None):
        key = (k, tuple(columns) if columns is not None else None)
        cache = self._feature_trees
        if key not in cache:
            d, t = self.design, self.design.terms[k]
            feats = cluster_means(self._feature_frame(d.data, d.X, columns), t.codes).sort_index()
            if feats.shape[1] == 0:
                raise HierMIOError("the 'features' rule needs covariates: the fixed part has none; name cluster_features")
            cache[key] = fit_feature_tree(feats.to_numpy(), self._term_effects(k).to_numpy()[feats.index],
                                          self.tree_depth)
        return cache[key]

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        re_form: Any = None,
        allow_new_levels: bool = False,
        new_levels: str | None = None,
        cluster_features: Sequence[str] | None = None,
    ) -> pd.Series:
        """Predictions for ``newdata`` (the training rows when None).

        ``re_form=None`` uses the cluster effects of known levels; ``re_form="~0"`` (or ``NA`` /
        ``False``) predicts at population level. Rows of levels not seen in training get, by
        ``new_levels``: ``"population"`` no cluster effect (lme4's answer), ``"soft"`` the tree's
        class probabilities times the training effects, ``"hard"`` the most probable cluster's
        effect, ``"features"`` a regression tree on cluster-level features (the cluster means of
        the covariates, or the numeric columns named in ``cluster_features``). As in lme4, an unseen
        level is an error that names it unless ``allow_new_levels=True`` or a ``new_levels`` rule is
        given. Levels are matched by their spelling, as R matches them (the id ``"309"`` is level 309).
        The training transforms (``scale()``, ``poly()``, factor levels) are applied to ``newdata``.

        >>> import hiermio as hm
        >>> df = hm.load_dataset("sleepstudy")
        >>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", df, budget=3)
        >>> new = df.head(2).assign(Subject=999)
        >>> bool((fit.predict(new, allow_new_levels=True) == fit.predict(new, re_form="~0")).all())
        True
        """
        if newdata is None:
            return self.fitted().rename("predicted")
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        if new_levels is not None and new_levels not in RULES:
            raise HierMIOError(f"new_levels must be one of {list(RULES)}, got {new_levels!r}")
        # naming a rule for new levels allows them, as allow_new_levels=True does (lme4's default: an error)
        allow_new_levels = bool(allow_new_levels) or new_levels is not None
        new_levels = new_levels or "population"
        d = self.design
        population = _population_level(re_form)
        used = d.required_columns(random=not population)
        missing = [c for c in used if c not in newdata.columns]
        if missing:
            raise DataError(f"newdata lacks column(s) {missing} that the model uses")
        X = d.fixed_matrix(newdata)
        pred = X @ self.beta + d.offset_for(newdata)
        if population:
            return pd.Series(pred, index=newdata.index, name="predicted")
        for k, t in enumerate(d.terms):
            codes, labels = d.group_codes(k, newdata)
            if (labels == None).any():  # noqa: E711 - elementwise on an object array
                raise DataError(f"newdata has missing values in grouping factor {t.term.group!r}")
            unseen = codes < 0
            if unseen.any() and not allow_new_levels:
                new = pd.unique(labels[unseen])[:5].tolist()
                raise DataError(f"grouping factor {t.term.group!r} has level(s) {new} not seen in "
                                "training; pass allow_new_levels=True to predict them at population level")
            eff = self._term_effects(k).to_numpy()
            row_eff = eff[np.where(unseen, 0, codes)]
            row_eff[unseen] = 0.0
            if unseen.any() and new_levels in ("soft", "hard"):
                rule = soft_effects if new_levels == "soft" else hard_effects
                row_eff[unseen] = rule(self.assignment_tree_[t.term.group_name], X[unseen], eff)
            elif unseen.any() and new_levels == "features":
                frame = self._feature_frame(newdata, X, cluster_features)[unseen]
                new_labels = labels[unseen]
                feats = cluster_means(frame, new_labels)
                by_label = pd.DataFrame(self._feature_tree(k, cluster_features).predict(feats.to_numpy())
                                        .reshape(len(feats), -1), index=feats.index)
                row_eff[unseen] = by_label.loc[new_labels].to_numpy()
            pred = pred + np.einsum("ij,ij->i", d.term_values(k, newdata), row_eff)
        return pd.Series(pred, index=newdata.index, name="predicted")

    # ------------------------------------------------------------------ reports
    def summary(self) -> "Summary":
        """An lme4-style summary (print it)."""
        return Summary(self)

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<MIOFit {self.formula!r}: {self.n_nonzero} nonzero cluster-effect columns, "
                f"{self.certificate.status}, gap {100 * self.certificate.gap:.3g}%>")


def _population_level(re_form: Any) -> bool:
    """lme4's ``re.form``: None uses every random term, ``~0`` / ``NA`` none; nothing else is taken."""
    if re_form is None:
        return False
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    if isinstance(re_form, (str, bool, int, np.bool_)) and re_form in _POPULATION:
        return True
    raise HierMIOError(f"re_form must be None (every random term) or '~0' / NA / False (population level), "
                       f"got {re_form!r}")


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.4e}"


class Summary:
    """Printable lme4-style summary of an :class:`MIOFit`."""

    def __init__(self, fit: MIOFit):
        self.fit = fit

    def coefficients(self) -> pd.DataFrame:
        """Fixed-effect table; standard errors are conditional on the selected support."""
        f = self.fit
        fe = f.fixef()
        if len(fe) == 0:
            return pd.DataFrame(columns=["Estimate", "Std. Error", "t value"])
        cov = f.fixed_cov_unscaled * f.sigma**2
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
        return pd.DataFrame({"Estimate": fe, "Std. Error": se, "t value": fe / se}, index=fe.index)

    def __str__(self) -> str:
        f, d, cert = self.fit, self.fit.design, self.fit.certificate
        lines = ["L0-constrained mixed model fit by mixed-integer optimization [hiermio]",
                 f"Formula: {f.formula}"]
        lines.append(f"   Data: {d.n} rows" + (f" ({d.n_dropped} with missing values dropped)" if d.n_dropped else ""))
        if not d.terms:
            lines.append("No random-effect terms: the fixed part alone was fitted (ordinary least squares).")
        else:
            sizes = f.problem.group_sizes
            unit = "columns" if f.problem.selection == "column" else "levels"
            lines.append(f"Budget ({f.problem.selection} selection): " + "; ".join(
                f"{n} <= {b} of {s} {unit}" for n, b, s in zip(f.problem.group_names, f.problem.budgets, sizes)))
            mus = []
            for k, t in enumerate(d.terms):
                off = d.term_offsets()[k]
                mus += [f"{t.term.group}:{c} {_fmt(f.mu[off + i])}" for i, c in enumerate(t.coef_names)]
            lines.append(f"Ridge mu (= {f.ridge:g} x median per-level z'z): " + ", ".join(mus))
            lines.append(f"Solver: {cert.solver}")
            lines.append(f"  status {cert.status}; objective {cert.primal:.8g}; bound {cert.dual:.8g}; "
                         f"gap {100 * cert.gap:.4g}%; {cert.nodes} nodes; {cert.cuts} cuts; {cert.time:.2f} s")
        lines += ["", "Random effects (fitted effects; levels that do not differ count as 0):"]
        vc = f.VarCorr()
        tab = pd.DataFrame({
            "Groups": vc.Groups.where(~vc.Groups.duplicated(), ""),
            "Name": vc.Name,
            "Variance": vc.Variance.map(_fmt),
            "Std.Dev.": vc["Std.Dev."].map(_fmt),
            "Corr": vc.Corr.map(lambda c: " ".join(f"{x:.2f}" for x in c)),
            "Nonzero": [f"{int(a)}/{int(b)}" if b == b else "" for a, b in zip(vc.Nonzero, vc.Levels)],
        })
        lines.append(tab.to_string(index=False))
        groups = ", ".join(f"{t.term.group_name}, {t.n_levels}" for t in _unique_groups(d))
        lines.append(f"Number of obs: {d.n}" + (f", groups:  {groups}" if groups else ""))
        if d.terms:
            icc = f.icc.dropna()
            if len(icc):
                lines.append("ICC: " + ", ".join(f"{g} {v:.3f}" for g, v in icc.items()))
        lines += ["", "Fixed effects (unpenalized; std. errors conditional on the selected support):"]
        lines.append(self.coefficients().to_string(float_format=_fmt))
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


def _unique_groups(d: Design):
    seen = {}
    for t in d.terms:
        seen.setdefault(t.term.group, t)
    return list(seen.values())
