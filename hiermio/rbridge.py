"""What the R package (``r_bridge/``) calls: fits returned as plain containers R can keep.

reticulate turns dicts into named lists and numpy arrays into vectors and matrices, so nothing
returned here is a Python object that dies with the session.

>>> import hiermio as hm
>>> out = fit_for_r("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), 3.0)
>>> {"fixef", "ranef", "coef", "sigma", "certificate", "summary"} <= set(out), out["fixef"]["names"]
(True, ['(Intercept)', 'Days'])
>>> def has_numpy(x):
...     if isinstance(x, dict):
...         return any(has_numpy(v) for v in x.values())
...     if isinstance(x, list):
...         return any(has_numpy(v) for v in x)
...     return type(x).__module__ == "numpy"
>>> has_numpy(out), len(out["ranef"]["Subject"]["values"]) == 18
(False, True)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .fitting.api import fit
from .core.control import VECTOR_OPTIONS, FitControl
from .core.exceptions import HierMIOWarning
from .comparisons.lme4 import lmer_status  # noqa: F401 - R's compare_lmer decides lme4's status with it
from .fitting.results import MIOFit

__all__ = ["fit_for_r", "fit_object", "export_fit", "export_for_r", "predict_for_r", "columns_for_r"]


def _whole(value: Any) -> Any:
    """R sends 5 as 5.0; budgets are whole numbers, so pass whole floats on as ints (and a tail
    budget c(3, 5), which arrives as a list, as the pair (3, 5))."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_whole(v) for v in value)
    return value


def _plain(x: Any) -> Any:
    """numpy arrays and scalars as Python lists and numbers: reticulate 1.28 cannot convert numpy 2."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _frame(df: pd.DataFrame) -> dict[str, Any]:
    # values column by column, as R's matrix() reads them
    return {"rownames": [str(i) for i in df.index], "columns": [str(c) for c in df.columns],
            "values": df.to_numpy(dtype=float).ravel(order="F")}


def export_fit(res: MIOFit) -> dict[str, Any]:
    """Everything an R user reads from a fit, as lists, vectors and (column-major) matrices."""
    vc = res.VarCorr()
    cert = res.certificate
    return {
        "formula": res.formula,
        "fixef": {"names": list(res.fixef().index), "values": res.fixef().to_numpy()},
        "se": res.summary().coefficients()["Std. Error"].to_numpy(),
        "ranef": {g: _frame(df) for g, df in res.ranef().items()},
        "coef": {g: _frame(df) for g, df in res.coef().items()},
        "sigma": res.sigma,
        "icc": {str(k): float(v) for k, v in res.icc.items()},
        "varcorr": {"groups": vc.Groups.tolist(), "names": vc.Name.tolist(),
                    "variance": vc.Variance.to_numpy(dtype=float), "sd": vc["Std.Dev."].to_numpy(dtype=float),
                    "nonzero": vc.Nonzero.to_numpy(dtype=float), "levels": vc.Levels.to_numpy(dtype=float)},
        "selected": {t: [str(v) for v in levels] for t, levels in res.selected.items()},
        "terms": [{"label": t.term.label, "expr": t.term.expr, "group": t.term.group,
                   "coef_names": list(t.coef_names)} for t in res.design.terms],
        "fixed": res.design.formula.fixed,
        "response": res.design.formula.response,
        "budgets": res.budgets,
        "nobs": res.nobs,
        "n_dropped": res.design.n_dropped,
        "certificate": {"status": cert.status, "objective": cert.primal, "bound": cert.dual, "gap": cert.gap,
                        "nodes": cert.nodes, "cuts": cert.cuts, "time": cert.time, "solver": cert.solver},
        "summary": str(res.summary()),
        "warnings": list(res.warnings),
    }


def fit_object(formula: str, data: pd.DataFrame, budget: Any, **options: Any) -> MIOFit:
    """:func:`hiermio.fit` with R's numbers made whole (R keeps the result, for ``predict``).

    Its warnings are not printed here: they travel in ``res.warnings`` and R raises them as R warnings.
    """
    options = {k: _whole(v) if k in ("seed", "threads", "enumerate_below") else v for k, v in options.items()}
    control = FitControl.from_options(options, "hmio", extra=VECTOR_OPTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HierMIOWarning)
        return fit(formula, data, _whole(budget), progress=False, weights=options.get("weights"),
                   offset=options.get("offset"), **control.as_dict())


def export_for_r(res: MIOFit) -> dict[str, Any]:
    """:func:`export_fit` as plain Python lists and numbers."""
    return _plain(export_fit(res))


def fit_for_r(formula: str, data: pd.DataFrame, budget: Any, **options: Any) -> dict[str, Any]:
    """:func:`hiermio.fit` with R's numbers made whole, returned through :func:`export_fit`."""
    return export_for_r(fit_object(formula, data, budget, **options))


def predict_for_r(res: MIOFit, newdata: pd.DataFrame, re_form: Any = None, allow_new_levels: bool = False,
                  new_levels: str | None = None) -> list[float]:
    """:meth:`MIOFit.predict` for R's ``predict()``: the design of the new rows is built in Python,
    with the training transforms, so R and Python give the same numbers for every formula. R sends
    ``re.form`` as None, "~0" or the formula's text.

    >>> import hiermio as hm
    >>> df = hm.load_dataset("sleepstudy")
    >>> res = fit_object("Reaction ~ scale(Days) + (1 | Subject)", df, 2.0)
    >>> predict_for_r(res, df.head(1)) == res.predict(df.head(1)).tolist()
    True
    """
    out = res.predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels, new_levels=new_levels)
    return [float(v) for v in out.to_numpy()]


def columns_for_r(formula: str, columns: list[str], response: bool = True) -> dict[str, list[str]]:
    """The columns of an R data frame that ``formula`` reads, in the data's order, and those among
    them that only group (R sends a Date grouping factor as ``factor()`` spells its levels, a Date
    covariate as its number, as lme4 reads them). R sends only these columns: one the formula does
    not use is none of the model's business, whatever its class.

    With ``response`` (a fit), a column the formula names but the data lack is the fit's own error,
    raised before any data crosses.

    >>> columns_for_r("y ~ log(x) + (1 | g)", ["when", "g", "x", "y"])
    {'columns': ['g', 'x', 'y'], 'groups': ['g']}
    """
    from .formula.design import _check_columns, required_columns
    from .formula.terms import parse_formula
    from .formula.variables import referenced_columns

    parsed = parse_formula(formula)
    needed = required_columns(parsed, response=response)
    if response:
        _check_columns(needed, pd.DataFrame(columns=list(columns)))
    names = set().union(*needed.values())
    values = set().union(*(v for k, v in needed.items() if not k.startswith("random term")),
                         *(referenced_columns(t.lhs) for t in parsed.random))
    return {"columns": [c for c in columns if c in names], "groups": [c for c in columns if c in names - values]}


# ---------------------------------------------------------------------------------- R's generics and workflow
def table_for_r(df: pd.DataFrame, index: str | None = None) -> dict[str, Any]:
    """A data frame as R's ``data.frame`` is built from it: row names, column names and one plain
    list per column (numbers, logicals or text; missing numbers as NaN, missing text as "").

    >>> table_for_r(pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None]}, index=[3, 4]))["columns"]
    [[1.5, nan], ['x', '']]
    """
    if index is not None:
        df = df.reset_index().rename(columns={"index": index})

    def column(s: pd.Series) -> list:
        if pd.api.types.is_bool_dtype(s):
            return [bool(v) for v in s]
        if pd.api.types.is_numeric_dtype(s):
            return [float(v) for v in s.astype(float)]
        return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else
                (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)) for v in s]

    return {"rownames": [str(i) for i in df.index], "names": [str(c) for c in df.columns],
            "columns": [column(df[c]) for c in df.columns]}


def rows_for_r(res: MIOFit) -> dict[str, Any]:
    """The 1-based positions of the rows the fit used (R's rows, NA rows dropped) and the columns it read."""
    from .comparisons.lme4 import _used_columns

    d = res.design
    return {"rows": [int(r) + 1 for r in d.rows], "columns": _used_columns(res.formula, d.data, True)}


def fitted_for_r(res: MIOFit) -> list[float]:
    return [float(v) for v in res.fitted().to_numpy()]


def residuals_for_r(res: MIOFit) -> list[float]:
    return [float(v) for v in res.residuals().to_numpy()]


def vcov_for_r(res: MIOFit, kind: str = "robust", cluster: str | None = None) -> dict[str, Any]:
    """:meth:`MIOFit.vcov` as names and column-major values."""
    v = res.vcov(kind, cluster)
    return {"names": list(v.index), "values": v.to_numpy().ravel(order="F").tolist()}


def confint_for_r(res: MIOFit, level: float = 0.95, kind: str = "robust", B: Any = 200,
                  random_state: Any = 0) -> dict[str, Any]:
    return table_for_r(res.confint(float(level), kind, B=_whole(B), random_state=_whole(random_state)))


def ranking_for_r(res: MIOFit, stability: Any = None) -> dict[str, Any]:
    """:meth:`MIOFit.ranking` (lme4's BLUPs are joined in R, from R's own lme4 fit)."""
    return {g: table_for_r(t, index=g) for g, t in res.ranking(stability=stability).items()}


def bootstrap_for_r(res: MIOFit, B: Any = 200, level: float = 0.95, random_state: Any = 0,
                    certify: bool = False) -> dict[str, Any]:
    from .workflow.audit import bootstrap

    return table_for_r(bootstrap(res, B=_whole(B), level=float(level), random_state=_whole(random_state),
                                 progress=False, certify=bool(certify)))


def cv_for_r(formula: str, data: pd.DataFrame, budgets: Any = "auto", ridges: Any = None, **options: Any) -> dict:
    """:func:`hiermio.cv` for R: the table (ridge and budget as columns), the choice and the final fit."""
    from .workflow.validation import cv

    options = {k: _whole(v) for k, v in options.items()}
    budgets = budgets if isinstance(budgets, str) else [_whole(b) for b in np.atleast_1d(budgets).tolist()]
    ridges = None if ridges is None else [float(r) for r in np.atleast_1d(ridges).tolist()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HierMIOWarning)
        res = cv(formula, data, budgets=budgets, ridges=ridges, progress=False, **options)
    return {"table": table_for_r(res.table.reset_index()), "best_budget": int(res.best_budget_),
            "best_ridge": res.best_ridge_, "fit": res.best_fit_,
            "warnings": [str(w.message) for w in caught if issubclass(w.category, HierMIOWarning)]}


def path_for_r(formula: str, data: pd.DataFrame, budgets: Any, **options: Any) -> dict[str, Any]:
    from .workflow.path import path

    options = {k: _whole(v) for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HierMIOWarning)
        p = path(formula, data, [_whole(b) for b in np.atleast_1d(budgets).tolist()], progress=False, **options)
    table = p.table.assign(entered=p.entering().entered)
    return table_for_r(table.reset_index())


def stability_for_r(formula: str, data: pd.DataFrame, budget: Any, B: Any = 100, threshold: float = 0.8,
                    **options: Any) -> dict[str, Any]:
    from .workflow.stability import stability

    options = {k: _whole(v) for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HierMIOWarning)
        st = stability(formula, data, _whole(budget), B=_whole(B), progress=False, **options)
    watch = st.watchlist(threshold=float(threshold))
    return {"frequencies": table_for_r(st.frequencies), "watchlist": table_for_r(watch),
            "expected_false": {k: float(v) for k, v in watch.attrs.get("expected_false", {}).items()}}
