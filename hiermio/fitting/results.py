"""The fitted model: estimates under lme4's names, predictions and an lme4-style summary.

Definitions used throughout (they are not lme4's, since no distribution is assumed):

* cluster effects (and fixed effects) are refitted without the ridge on the selected support
  (``refit=True``, the default; the certificate describes the selection), or with ``refit=False``
  the ridge estimates exactly as the optimisation produced them;
* ``sigma`` is sqrt(RSS / (n - p - number of nonzero cluster-effect columns));
* ``VarCorr`` gives, per grouping factor, the second moments about zero of the fitted effects over
  all levels (zeros included): a level that does not differ from the population counts as 0;
* ``icc`` per grouping factor is v / (v + sigma^2) with v that factor's intercept variance from
  ``VarCorr``: the share of variance at x = 0 explained by the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..core.control import FitControl, check_bool, check_choice, check_real
from ..formula.design import Design, required_columns
from .inference import RobustCovariance, cluster_robust
from ..core.exceptions import DataError, FormulaError, HierMIOError
from ..formula.terms import RandomTerm, parse_formula
from ..formula.modelmatrix import ColumnLayout
from .newclusters import RULES, TermTraining, check_rule
from ..solve.certificate import Certificate
from ..problem.selection import BudgetRecord, SelectionProblem

if TYPE_CHECKING:
    from .reports import Summary

__all__ = ["MIOFit"]


@dataclass
class MIOFit:
    """Result of :func:`hiermio.fit`: estimates, certificate, predictions and summary.

    >>> import hiermio as hm
    >>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
    >>> fit.fixef().round(1).to_dict()
    {'(Intercept)': 260.1, 'Days': 10.5}
    >>> sum(len(v) for v in fit.selected.values())
    4
    """

    design: Design = field(repr=False)
    # the selection problem with its statistics, for diagnostics (bounds, brute force); the model
    # itself needs only its budget record
    problem: SelectionProblem = field(repr=False)
    budget: BudgetRecord
    support: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    mu: np.ndarray = field(repr=False)
    ridge: float
    rss: float
    fixed_cov_unscaled: np.ndarray = field(repr=False)  # Cov(beta) / sigma^2 at the support
    certificate: Certificate
    timings: dict[str, float] = field(default_factory=dict)  # seconds: design, first_solution, local_search, search, total
    control: FitControl | None = field(default=None, repr=False)  # the options of the fit
    # the ridge weights the reported estimates carry: the refit's tiny ones, or the selection's mu
    estimate_mu: np.ndarray | None = field(default=None, repr=False)
    # everything the user was warned about: dropped rows and columns, then the solver's notes
    warnings: list[str] = field(default_factory=list, repr=False)
    solver_warnings: list[str] = field(default_factory=list, repr=False)
    tree_depth: int | None = None  # depth of the new-cluster trees; None: ceil(log2 K)
    # the function that made this fit, called again by the bootstrap on resamples (set by make_fit):
    # the results carry the fitting entry point instead of importing it
    fitter: Callable[..., "MIOFit"] | None = field(default=None, repr=False, compare=False)
    _rule_cache: dict = field(default_factory=dict, repr=False)  # trees of the new-level rules
    _robust_cache: dict = field(default_factory=dict, repr=False)  # robust covariances by cluster

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
        """Rows minus fixed effects minus nonzero cluster effects (lm's ``df.residual``)."""
        return self.nobs - self.design.p - self.n_nonzero

    @property
    def saturated(self) -> bool:
        """No residual degrees of freedom are left: the fit interpolates the rows, so sigma, every
        standard error and every interval are undefined (NaN, as lm's with df 0)."""
        return self.df_residual <= 0

    def robust(self, cluster: str | None = None, selection_aware: bool = True) -> RobustCovariance:
        """The cluster-robust covariance (:func:`hiermio.fitting.inference.cluster_robust`), computed once per
        cluster; ``selection_aware=False`` omits the selection's boundary correction."""
        key = (cluster, check_bool(selection_aware, "selection_aware"))
        if key not in self._robust_cache:
            self._robust_cache[key] = cluster_robust(self, cluster, selection_aware)
        return self._robust_cache[key]

    def vcov(self, kind: str = "robust", cluster: str | None = None) -> pd.DataFrame:
        """Covariance of the fixed effects.

        ``kind="robust"`` (the default, as in the summary): cluster-robust CR1 by ``cluster`` (a
        grouping factor; default the coarsest), *selection-aware*: it accounts for clusters moving
        in and out of the support from sample to sample (see :mod:`hiermio.fitting.inference`).
        ``kind="support"``: the same CR1 given the selected support (statsmodels' cluster
        covariance on [X : Z_S]); too small for covariates identified between clusters.
        ``kind="conditional"``: given the support, every unselected cluster exactly the population.

        >>> import hiermio as hm
        >>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
        >>> v = fit.vcov()
        >>> list(v.index) == list(v.columns) == ["(Intercept)", "Days"]
        True
        >>> bool(v.iloc[0, 0] >= fit.vcov("support").iloc[0, 0])
        True
        """
        names = list(self.design.fixed_names)
        check_choice(kind, "kind", ("robust", "support", "conditional"))
        if self.saturated:  # residuals are zero by construction: a zero covariance would be a false precision
            return pd.DataFrame(np.full((len(names), len(names)), np.nan), index=names, columns=names)
        if kind in ("robust", "support"):
            cov = self.robust(cluster, selection_aware=kind == "robust").cov
        else:
            cov = self.fixed_cov_unscaled * self.sigma**2
        return pd.DataFrame(cov, index=names, columns=names)

    def confint(self, level: float = 0.95, kind: str = "robust", cluster: str | None = None,
                B: int = 200, random_state: int = 0) -> pd.DataFrame:
        """Intervals for the fixed effects: Wald with the ``robust`` or ``support`` (t on clusters - 1
        df) or ``conditional`` (t on the residual df) covariance, or the cluster ``bootstrap``'s percentiles
        (:func:`hiermio.bootstrap`, ``B`` screened refits).

        >>> import hiermio as hm
        >>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=4)
        >>> list(fit.confint(0.9).columns)
        ['5 %', '95 %']
        """
        from scipy import stats

        level = check_real(level, "level", lambda v: 0 < v < 1, "strictly between 0 and 1")
        check_choice(kind, "kind", ("robust", "support", "conditional", "bootstrap"))
        lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
        fe = self.fixef()
        if kind == "bootstrap":
            from .bootstrap import bootstrap  # refits through self.fitter: no import of the fitting entry point

            boot = bootstrap(self, B=B, level=level, random_state=random_state, progress=False)
            return pd.DataFrame({lo: boot.iloc[:, 2].to_numpy(), hi: boot.iloc[:, 3].to_numpy()}, index=fe.index)
        se = np.sqrt(np.clip(np.diag(self.vcov(kind, cluster).to_numpy()), 0, None))
        df = self.robust(cluster).df if kind in ("robust", "support") else max(self.df_residual, 1)
        q = stats.t.ppf((1 + level) / 2, df)
        return pd.DataFrame({lo: fe - q * se, hi: fe + q * se}, index=fe.index)

    @property
    def sigma(self) -> float:
        """Residual standard deviation, sqrt(RSS / (n - p - nonzero effects)); NaN for a
        :attr:`saturated` fit."""
        return float(np.sqrt(self.rss / self.df_residual)) if not self.saturated else np.nan

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
    def budgets(self) -> dict[str, int | tuple[int, int]]:
        """The budget as :func:`hiermio.fit` takes it (a (below, above) pair for a tailed term)."""
        return self.budget.as_budget()

    # ------------------------------------------------------------------ fitted values
    def fitted(self) -> pd.Series | Any:
        """Fitted values of the rows used (offset included).

        For data read in partitions: a lazy dask Series for a dask DataFrame, else an iterator of
        pandas Series, one per partition (:meth:`residuals` alike).
        """
        d = self.design
        if not d.in_memory:
            return self._per_partition(d.source, lambda frame: self._block_fitted(d.block_of(frame), residual=False),
                                       "fitted")
        # block by block: the fixed-effects matrix is not built whole
        return pd.concat([self._block_fitted(block, residual=False) for block in d.row_blocks()])

    def residuals(self) -> pd.Series | Any:
        """The response minus the fitted values (see :meth:`fitted` for data read in partitions)."""
        d = self.design
        if not d.in_memory:
            return self._per_partition(d.source, lambda frame: self._block_fitted(d.block_of(frame), residual=True),
                                       "residuals")
        return pd.Series(self.design.y, index=self.design.rows) - self.fitted()

    def _block_fitted(self, block: Any, residual: bool) -> pd.Series:
        """Fitted values (offset included) or residuals of a block of rows."""
        d = self.design
        linear = block.X @ self.beta + block.random_matrix(d.term_offsets(), d.n_columns) @ self.gamma
        if residual:
            return pd.Series(block.y - linear, index=block.index, name="residuals")
        off = block.offset if block.offset is not None else 0.0
        return pd.Series(linear + off, index=block.index, name="fitted")

    @staticmethod
    def _per_partition(source: Any, fn: Any, name: str) -> Any:
        """``fn`` of every partition of ``source``: lazily on dask, else an iterator of Series."""
        from ..data.sources import DaskSource

        if isinstance(source, DaskSource):
            return source.frame.map_partitions(fn, meta=pd.Series(dtype=float, name=name))
        return (fn(frame) for frame in source.partitions() if len(frame))

    @cached_property
    def assignment_tree_(self) -> dict[str, Any]:
        """Per grouping factor, the CART classifier from fixed-part covariates to training levels.

        Print one with ``sklearn.tree.export_text(tree, feature_names=list(fit.design.fixed_names))``.
        """
        return {t.term.group_name: self._training(self.design.terms.index(t)).assignment_tree()
                for t in self.design.group_terms}

    def _training(self, k: int) -> TermTraining:
        """What the new-level rules learn from for term ``k`` (trees are cached across predictions)."""
        d, t = self.design, self.design.terms[k]
        d.require_rows("a new-level rule other than 'population'")
        return TermTraining(X=d.X, fixed_names=d.fixed_names, data=d.data, codes=t.codes,
                            effects=self._term_effects(k).to_numpy(), group=t.term.group, depth=self.tree_depth,
                            cache=self._rule_cache)

    def _kept_coefficients(self, chosen: "tuple[RandomTerm, ...] | None", re_form: Any,
                           data: pd.DataFrame) -> list[np.ndarray]:
        """Per random term of the model, which of its coefficients ``re_form`` keeps (0/1 floats).

        lme4 matches ``re.form`` by grouping factor and coefficient name: ``~(1 | Subject)`` on a
        model with ``(Days | Subject)`` keeps the Subject intercepts only. A grouping factor or a
        coefficient the model does not have is an error, as in lme4.
        """
        d = self.design
        if chosen is None:
            return [np.ones(t.q) for t in d.terms]
        names_by_group: dict[str, set[str]] = {}
        for t in d.terms:
            names_by_group.setdefault(t.term.group_name, set()).update(t.coef_names)
        wanted: dict[str, set[str]] = {}
        for term in chosen:
            g = term.group_name
            if g not in names_by_group:
                raise HierMIOError(f"re_form={re_form!r} names the grouping factor {g!r}, which is not in the model "
                                   f"(its grouping factors: {sorted(names_by_group)})")
            values = d._new_values(list(term.terms.variables), data.iloc[:1], f"re_form term {term.label}")
            names = ColumnLayout.build(term.terms, values).names
            extra = [c for c in names if c not in names_by_group[g]]
            if extra:
                raise HierMIOError(f"re_form={re_form!r}: term {term.label} has coefficient(s) {extra} that the "
                                   f"model's terms for {g!r} do not have ({sorted(names_by_group[g])})")
            wanted.setdefault(g, set()).update(names)
        return [np.array([c in wanted.get(t.term.group_name, ()) for c in t.coef_names], dtype=float) for t in d.terms]

    def predict(
        self,
        newdata: Any = None,
        re_form: Any = None,
        allow_new_levels: bool = False,
        new_levels: str | None = None,
        cluster_features: Sequence[str] | None = None,
    ) -> pd.Series:
        """Predictions for ``newdata`` (the training rows when None).

        ``newdata`` read in partitions (a dask DataFrame, a parquet path, chunks) gives a lazy dask
        Series or an iterator of pandas Series, one per partition.

        ``re_form`` is lme4's ``re.form``: None uses every random term; ``"~0"`` (or ``NA`` /
        ``False`` / ``"NA"``) predicts at population level; a formula of random terms, such as
        ``"~(1 | Subject)"``, uses the coefficients it names of the model's terms with the same
        grouping factor (matched as lme4 matches them). Rows of levels not seen in training get, by
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
        # every option validated first, also when newdata is missing
        chosen = _re_form_terms(re_form)
        allow_new_levels = check_bool(allow_new_levels, "allow_new_levels")
        if new_levels is not None:
            check_rule(new_levels)
        if newdata is None:
            if chosen is not None:  # the training rows, with the terms re_form keeps
                self.design.require_rows("predict() with re_form and without newdata")
                return self.predict(self.design.data, re_form=re_form)
            fitted = self.fitted()  # a Series (pandas or dask), or an iterator of them, one per partition
            return (f.rename("predicted") for f in fitted) if isinstance(fitted, Iterator) else fitted.rename("predicted")
        if not isinstance(newdata, pd.DataFrame):
            from ..data.sources import as_source, is_out_of_core

            if not is_out_of_core(newdata):
                raise DataError(f"newdata must be a pandas DataFrame, a dask DataFrame, a parquet path or chunks, got "
                                f"{type(newdata).__name__}")
            options = dict(re_form=re_form, allow_new_levels=allow_new_levels, new_levels=new_levels,
                           cluster_features=cluster_features)
            return self._per_partition(as_source(newdata), lambda frame: self.predict(frame, **options), "predicted")
        # naming a rule for new levels allows them, as allow_new_levels=True does (lme4's default: an error)
        allow_new_levels = allow_new_levels or new_levels is not None
        new_levels = new_levels or "population"
        d = self.design
        kept = self._kept_coefficients(chosen, re_form, newdata)
        used = set(d.required_columns(random=False))
        for k, t in enumerate(d.terms):
            if kept[k].any():
                used |= set(required_columns(d.formula, response=False)[f"random term {t.term.label}"])
        missing = [c for c in sorted(used) if c not in newdata.columns]
        if missing:
            raise DataError(f"newdata lacks column(s) {missing} that the model uses")
        if len(newdata) == 0:  # no rows, no predictions (as R's predict on a frame of zero rows)
            return pd.Series(np.zeros(0), index=newdata.index, name="predicted")
        X = d.fixed_matrix(newdata)
        pred = X @ self.beta + d.offset_for(newdata)
        for k, t in enumerate(d.terms):
            if not kept[k].any():
                continue
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
            if unseen.any() and new_levels != "population":  # the population: no effect, as lme4
                row_eff[unseen] = RULES[new_levels].effects(self._training(k), X[unseen], newdata[unseen],
                                                            labels[unseen], cluster_features)
            values = d.term_values(k, newdata) * kept[k]  # the coefficients re_form leaves out count 0
            pred = pred + np.einsum("ij,ij->i", values, row_eff)
        return pd.Series(pred, index=newdata.index, name="predicted")

    # ------------------------------------------------------------------ reports
    def ranking(self, stability: pd.DataFrame | None = None, reference: Any = None) -> dict[str, pd.DataFrame]:
        """Which clusters are atypical, strongest evidence first (see :func:`hiermio.fitting.reports.ranking`).

        ``stability``: :attr:`hiermio.Stability.frequencies` to join; ``reference``: an
        :func:`hiermio.lmer` fit whose BLUPs are joined by level.
        """
        from .reports import ranking

        return ranking(self, stability, reference)

    def plot(self, group: str | None = None, coef: str = "(Intercept)"):
        """Caterpillar plot of the cluster effects, zeros marked apart (see :func:`hiermio.fitting.reports.plot_effects`)."""
        from .reports import plot_effects

        return plot_effects(self, group, coef)

    def summary(self) -> "Summary":
        """An lme4-style summary (print it)."""
        from .reports import Summary  # reports read fits; fits do not depend on reports

        return Summary(self)

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<MIOFit {self.formula!r}: {self.n_nonzero} nonzero cluster-effect columns, "
                f"{self.certificate.status}, gap {100 * self.certificate.gap:.3g}%>")


def _re_form_terms(re_form: Any) -> "tuple[RandomTerm, ...] | None":
    """lme4's ``re.form``, read: None keeps every random term, ``()`` none (``~0``, ``NA``, ``False``:
    population level), else the random terms the formula names. Anything else is an error.

    >>> [t.label for t in _re_form_terms("~ (1 | a) + (1 | b)")], _re_form_terms("~0"), _re_form_terms(None)
    (['(1 | a)', '(1 | b)'], (), None)
    """
    if re_form is None:
        return None
    if isinstance(re_form, (bool, np.bool_)) and not re_form:
        return ()
    if isinstance(re_form, (float, np.floating)) and np.isnan(re_form):
        return ()
    problem = ""
    if isinstance(re_form, str):
        text = " ".join(re_form.split())
        if text == "NA":
            return ()
        if text.startswith("~"):
            try:
                parsed = parse_formula(f"re_form {text}")  # a response makes it a model formula
            except FormulaError as exc:
                problem = f" ({exc})"
            else:
                fixed = parsed.fixed_node is None or parsed.fixed == "0"
                if fixed and (parsed.random or parsed.fixed == "0"):
                    return parsed.random
                if not fixed:
                    problem = f" (it has the fixed term(s) {parsed.fixed!r}; re_form names random terms only)"
    raise HierMIOError(f"re_form must be None (every random term), '~0' / NA / False (population level) or a formula "
                       f"of the model's random terms such as '~(1 | g)', got {re_form!r}{problem}")
