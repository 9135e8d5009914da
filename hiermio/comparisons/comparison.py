"""Side-by-side comparison of OLS, ridge, lme4 and MIO on one formula and one train/test split.

Every method sees the same fixed-effects matrix (coefficients line up by lme4's names) and is
scored on the same rows. A method that fails (lme4 that cannot fit, R missing) is reported with
status "failed" and its message; the others are still compared.

>>> import hiermio as hm
>>> df = hm.load_dataset("sleepstudy")
>>> cmp = hm.compare("Reaction ~ Days + (1 | Subject)", df, methods=["ols", "mio"], budget=3,
...                  split="within", random_state=0)
>>> list(cmp.table.index), list(cmp.table.columns[:3])
(['ols', 'mio'], ['status', 'time_s', 'train_mse'])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from ..core.control import VECTOR_OPTIONS, FitControl, check_bool, check_real
from ..formula.design import build_design, group_labels, carry_vector_options
from ..core.exceptions import HierMIOError
from ..formula.terms import parse_formula
from ..fitting.newclusters import check_rule
from ..problem.selection import Budget, SelectionProblem
from ..data.splits import check_random_state, shuffled_clusters
from .methods import METHODS

__all__ = ["compare", "Comparison", "train_test_split_clusters"]



def train_test_split_clusters(
    data: pd.DataFrame,
    group: str,
    scheme: Literal["within", "cluster"] = "within",
    test_size: float = 0.2,
    random_state: int | None = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows for testing: ``"within"`` holds out a share of every cluster's rows (the paper's
    scheme; all test clusters are known), ``"cluster"`` holds out whole clusters (all are new).
    Rows are split by position, whatever the data's index; held-out clusters are drawn by their
    labels, so any order of the rows holds out the same clusters.

    >>> import hiermio as hm
    >>> df = hm.load_dataset("sleepstudy")
    >>> tr, te = train_test_split_clusters(df, "Subject", "cluster", test_size=0.25, random_state=1)
    >>> set(tr.Subject) & set(te.Subject)
    set()
    """
    if scheme not in ("within", "cluster"):
        raise HierMIOError(f"split must be 'within' or 'cluster', got {scheme!r}")
    test_size = check_real(test_size, "test_size", lambda v: 0 < v < 1, "strictly between 0 and 1")
    rng = np.random.default_rng(check_random_state(random_state))
    labels = group_labels(data, group)
    if scheme == "cluster":
        levels = sorted(pd.unique(labels), key=repr)  # by label, so that any order of the rows holds out the same
        n_test = max(1, int(round(test_size * len(levels))))
        test_levels = set(rng.choice(levels, n_test, replace=False).tolist())
        mask = labels.isin(test_levels).to_numpy()
    else:
        mask = np.zeros(len(data), dtype=bool)
        for idx in shuffled_clusters(labels, rng):
            k = int(np.floor(test_size * len(idx)))
            if k and len(idx) > 1:
                mask[idx[: min(k, len(idx) - 1)]] = True
    return data.iloc[np.flatnonzero(~mask)], data.iloc[np.flatnonzero(mask)]


@dataclass
class Comparison:
    """Result of :func:`compare`: one row per method, and the estimates behind it."""

    formula: str
    table: pd.DataFrame
    fixef: pd.DataFrame
    ranef: dict[str, pd.DataFrame] = field(default_factory=dict)
    fits: dict[str, object] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        t = self.table.copy()
        for c in ("time_s", "train_mse", "test_mse", "icc"):
            t[c] = t[c].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
        lines = [f"Comparison for {self.formula}", t.drop(columns=["messages"]).to_string(), "",
                 "Fixed effects:", self.fixef.to_string(float_format=lambda v: f"{v:.4g}")]
        notes = [f"  {m}: {msg}" for m, msgs in self.table["messages"].items() for msg in msgs]
        if notes:
            lines += ["", "Messages:", *notes]
        return "\n".join(lines)

    def plot(self, group: str | None = None, coef: str = "(Intercept)", label: int = 8):
        """Fixed effects by method, each coefficient on its own scale (an intercept of 250 and a
        slope of 10 are both readable), and lme4's against MIO's cluster effects for ``group``:
        MIO's zeros marked apart, the ``label`` levels with the largest effects named."""
        import matplotlib.pyplot as plt

        fe = self.fixef
        names = list(fe.index)
        ncol = min(4, max(1, len(names)))
        nrow = int(np.ceil(len(names) / ncol)) if names else 1
        fig = plt.figure(figsize=(4 + 2.3 * ncol, max(3.8, 2.2 * nrow)))
        left, right = fig.subfigures(1, 2, width_ratios=[2.3 * ncol, 4.6])
        axes = np.atleast_1d(left.subplots(nrow, ncol, squeeze=False)).ravel()
        colors = {m: f"C{i}" for i, m in enumerate(fe.columns)}
        for ax, name in zip(axes, names):
            vals = fe.loc[name]
            for i, (m, v) in enumerate(vals.items()):
                ax.plot([v], [i], "o", color=colors[m])
            ax.set_yticks(range(len(vals)), list(vals.index), fontsize=8)
            ax.set_ylim(-0.7, len(vals) - 0.3)
            ax.set_title(name, fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
            ax.margins(x=0.25)
        for ax in axes[len(names):]:
            ax.set_axis_off()
        left.suptitle("Fixed effects (each on its own scale)", fontsize=10)
        ax = right.subplots()
        if "mio" in self.ranef and "lmer" in self.ranef:
            g = group or next(iter(self.ranef["mio"]))
            mio, ref = self.ranef["mio"][g], self.ranef["lmer"][g]
            ref = ref.set_axis(mio.index.astype(str)).reindex(mio.index.astype(str))
            a, b = ref[coef].to_numpy(), mio[coef].to_numpy()
            zero = b == 0
            ax.scatter(a[~zero], b[~zero], label="MIO nonzero", zorder=3)
            ax.scatter(a[zero], b[zero], marker="x", color="grey", label="MIO zero (population)")
            lim = np.nanmax(np.abs(np.concatenate([a, b]))) * 1.1 or 1.0
            ax.plot([-lim, lim], [-lim, lim], lw=0.8, color="black")
            for i in np.argsort(-np.abs(np.nan_to_num(b)))[:label]:
                if not zero[i]:
                    ax.annotate(str(mio.index[i]), (a[i], b[i]), textcoords="offset points", xytext=(4, 3), fontsize=7)
            ax.set_xlabel(f"lme4 BLUP: {g} {coef}")
            ax.set_ylabel(f"MIO: {g} {coef}")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "cluster effects need both lmer and mio", ha="center", va="center")
            ax.set_axis_off()
        ax.set_title("Cluster effects", fontsize=10)
        return fig


def _mse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((np.asarray(y) - np.asarray(pred)) ** 2)) if len(y) else np.nan


def compare(
    formula: str,
    data: pd.DataFrame,
    test: pd.DataFrame | None = None,
    methods: Sequence[str] = tuple(METHODS),
    budget: Budget | Literal["cv"] = 5,
    split: Literal["within", "cluster"] | None = None,
    test_size: float = 0.2,
    random_state: int | None = 0,
    REML: bool = True,  # noqa: N803 - lme4's name
    cv_scheme: Literal["within", "cluster"] = "within",
    new_levels: str = "population",
    **fit_options,
) -> Comparison:
    """Fit the same formula with every method in ``methods`` and tabulate them.

    ``test`` is scored when given; otherwise ``split`` ("within" or "cluster") carves a test set
    out of ``data``; with neither, only training error is reported. ``budget="cv"`` chooses MIO's
    budget by 5-fold cross-validation on the training data (``cv_scheme``, see :func:`hiermio.cv`).
    ``new_levels`` is MIO's rule for new clusters (see :meth:`MIOFit.predict`); lme4 always uses
    the population level. New clusters in the test set
    are predicted at population level by lme4 and MIO alike.
    """
    control = FitControl.from_options(fit_options, "compare", extra=VECTOR_OPTIONS)
    REML = check_bool(REML, "REML")  # noqa: N806 - lme4's name
    if isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
        raise HierMIOError(f"methods must be a list of method names among {list(METHODS)}, got {methods!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise HierMIOError(f"unknown method(s) {unknown}; choose among {list(METHODS)}")
    check_rule(new_levels)
    random_state = check_random_state(random_state)
    if test is not None and not isinstance(test, pd.DataFrame):
        raise HierMIOError(f"test must be a pandas DataFrame, got {type(test).__name__}")
    parsed = parse_formula(formula)
    data = carry_vector_options(data, fit_options)
    weights, offset = fit_options.get("weights"), fit_options.get("offset")
    if test is None and split is not None:
        if not parsed.random:
            raise HierMIOError("split needs a random-effect term to know the clusters")
        data, test = train_test_split_clusters(data, parsed.random[0].group, split, test_size, random_state)
    design = build_design(parsed, data, na_action=control.na_action, weights=weights, offset=offset)
    if "mio" in methods and not (isinstance(budget, str) and budget == "cv"):
        SelectionProblem.check_budget(design, budget, control.selection)
    fit_options = control.fit_keywords(fit_options)
    train = design.data  # the rows the design kept (by position: the data's index may repeat labels)
    if test is not None:
        # the test rows are built with the training design (its factor levels and transforms)
        test = test.dropna(subset=design.required_columns(random=False, response=True))
        y_test = design.response_for(test)
    options = {"lmer": {"REML": REML, "weights": weights, "offset": offset},
               "mio": {"budget": budget, "new_levels": new_levels, "cv_scheme": cv_scheme,
                       "random_state": random_state, **fit_options}}
    rows, fixef, ranef, fits = {}, {}, {}, {}
    for m in methods:
        t0 = time.perf_counter()
        res = METHODS[m].fit(formula, train, design, **options.get(m, {}))
        row = {"status": res.status, "time_s": np.nan, "train_mse": np.nan, "test_mse": np.nan, "icc": res.icc,
               "n_effects": res.n_effects, "messages": res.messages}
        if res.ok:
            fits[m], fixef[m] = res.model, res.fixef
            if res.ranef:
                ranef[m] = res.ranef
            row["train_mse"] = _mse(design.y, res.fitted)
            row["test_mse"] = _mse(y_test, res.predict(test)) if test is not None else np.nan
        row["time_s"] = time.perf_counter() - t0
        rows[m] = row

    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table[["status", "time_s", "train_mse", "test_mse", "icc", "n_effects", "messages"]]
    return Comparison(formula, table, pd.DataFrame(fixef), ranef, fits)
