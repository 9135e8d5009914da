"""lme4's ``lmer`` on the same formula and data, through rpy2, as the reference LMEM.

Failures never escape as R tracebacks: a model lme4 cannot fit comes back with ``status="failed"``
and R's error text; convergence warnings, singular fits and R's messages are kept verbatim.
Data cross to R column by column from numpy arrays, only the columns the formula uses, with
factor levels in the order hiermio uses (a categorical's order, else sorted values).

>>> import hiermio as hm
>>> ref = hm.lmer("Reaction ~ Days + (Days | Subject)", hm.load_dataset("sleepstudy"))  # doctest: +SKIP
>>> ref.fixef().round(3).to_dict()  # doctest: +SKIP
{'(Intercept)': 251.405, 'Days': 10.467}
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..formula.design import required_columns, values_by_row
from ..core.control import check_bool
from ..core.exceptions import DataError, HierMIOError
from ..formula.terms import parse_formula

__all__ = ["lmer", "LmerFit", "LmerDesign", "lformula", "from_r", "RNotAvailableError", "r_available", "lmer_status"]

_INSTALL = ("install R and lme4 (Debian: apt-get install r-base-core r-cran-lme4) and rpy2 "
            "(pip install 'rpy2>=3.5,<3.6'), or run ./run setup as root")

_R_FIT = r"""
function(formula, data, REML, weights = NULL, offset = NULL) {
  warns <- character(0); msgs <- character(0)
  data$.hiermio_weights <- weights; data$.hiermio_offset <- offset
  fit <- tryCatch(
    withCallingHandlers(
      eval(bquote(lme4::lmer(stats::as.formula(formula), data = data, REML = REML,
                             weights = .(if (is.null(weights)) NULL else quote(.hiermio_weights)),
                             offset = .(if (is.null(offset)) NULL else quote(.hiermio_offset))))),
      warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
      message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }),
    error = function(e) e)
  if (inherits(fit, "error"))
    return(list(ok = FALSE, error = conditionMessage(fit), warnings = warns, messages = msgs))
  conv <- fit@optinfo$conv$lme4$messages
  re <- lme4::ranef(fit)
  vc <- as.data.frame(lme4::VarCorr(fit))
  list(ok = TRUE, fit = fit,
       fixef = unname(lme4::fixef(fit)), fixef_names = names(lme4::fixef(fit)),
       se = unname(sqrt(diag(as.matrix(stats::vcov(fit))))),
       sigma = stats::sigma(fit), logLik = as.numeric(stats::logLik(fit)),
       singular = lme4::isSingular(fit),
       conv = if (is.null(conv)) character(0) else as.character(conv),
       warnings = warns, messages = msgs,
       re_names = names(re),
       re = lapply(re, function(d) list(levels = rownames(d), cols = colnames(d), values = as.matrix(d))),
       vc_grp = as.character(vc$grp), vc_var1 = as.character(vc$var1), vc_var2 = as.character(vc$var2),
       vc_vcov = vc$vcov, vc_sdcor = vc$sdcor)
}
"""


_R_LFORMULA = r"""
function(formula, data, weights = NULL, offset = NULL) {
  suppressPackageStartupMessages(library(splines))
  data$.hiermio_weights <- weights; data$.hiermio_offset <- offset
  msgs <- character(0)
  lf <- withCallingHandlers(
    eval(bquote(lme4::lFormula(stats::as.formula(formula), data = data,
                               weights = .(if (is.null(weights)) NULL else quote(.hiermio_weights)),
                               offset = .(if (is.null(offset)) NULL else quote(.hiermio_offset))))),
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  Zt <- methods::as(lf$reTrms$Zt, "TsparseMatrix")
  fr <- lf$fr
  list(X = unname(lf$X), X_names = colnames(lf$X), rows = match(rownames(fr), rownames(data)),
       Zt_i = Zt@i, Zt_j = Zt@j, Zt_x = Zt@x, Zt_dim = dim(Zt),
       Zt_rows = rownames(lf$reTrms$Zt),
       cnms_names = names(lf$reTrms$cnms), cnms = lf$reTrms$cnms,
       flist_names = names(lf$reTrms$flist), flist_levels = lapply(lf$reTrms$flist, levels),
       term_factor = attr(lf$reTrms$flist, "assign"), n_levels = vapply(lf$reTrms$flist, nlevels, 1L),
       offset = if (is.null(stats::model.offset(fr))) numeric(0) else stats::model.offset(fr),
       weights = if (is.null(stats::model.weights(fr))) numeric(0) else stats::model.weights(fr),
       messages = msgs)
}
"""


class RNotAvailableError(HierMIOError, ImportError):
    """R, lme4 or rpy2 is missing."""


_R: dict[str, Any] = {}
_R_PROBE: dict[str, str] = {}
# embedded R runs on one thread: thread workers (dask with processes=False) take turns
_R_LOCK = threading.RLock()


def _r():
    """rpy2's robjects and the compiled fitting function, loaded once."""
    with _R_LOCK:
        return _load_r()


@contextlib.contextmanager
def _r_session():
    """R to ourselves, with rpy2's default conversion rules (they live in a context variable,
    which worker threads such as dask's do not inherit)."""
    R = _r()
    from rpy2.robjects.conversion import localconverter

    with _R_LOCK, localconverter(R["ro"].default_converter):
        yield R


def _probe_r() -> None:
    """Start R with lme4 in a child process first: a broken R (R_HOME pointing nowhere, a missing
    libR) aborts the process that loads it, and that must not be the user's Python."""
    code = ("import rpy2.rinterface_lib.callbacks as cb; cb.consolewrite_warnerror = lambda s: None; "
            "import rpy2.robjects as ro; ro.r('suppressPackageStartupMessages(library(lme4))')")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RNotAvailableError(f"R could not be started to check it ({exc}); " + _INSTALL) from None
    if out.returncode != 0:
        lines = [ln for ln in (out.stderr + out.stdout).strip().splitlines() if ln.strip()]
        cause = lines[-1] if lines else f"exit status {out.returncode}"
        if "No module named 'rpy2'" in cause:
            cause = "rpy2 is not installed"
        elif "lme4" in cause:
            cause = "R starts but the lme4 package is not installed"
        where = f" with R_HOME={os.environ['R_HOME']!r}" if os.environ.get("R_HOME") else ""
        raise RNotAvailableError(f"R with lme4 does not start in this environment{where} ({cause}); " + _INSTALL)


def _load_r():
    if not _R:
        if "probe_error" in _R_PROBE:  # a broken R stays broken for this process
            raise RNotAvailableError(_R_PROBE["probe_error"])
        try:
            _probe_r()
        except RNotAvailableError as exc:
            _R_PROBE["probe_error"] = str(exc)
            raise
        # starting R puts its library path (with the system's /usr/lib) into LD_LIBRARY_PATH; child
        # processes (joblib, dask) started later would then load the system's libraries into this
        # Python and fail ("undefined symbol"). R's libraries are loaded by then, so put it back.
        saved = os.environ.get("LD_LIBRARY_PATH")
        try:
            from rpy2.rinterface_lib import callbacks

            callbacks.consolewrite_warnerror = lambda s: None  # R's console chatter is not the user's business
            import rpy2.robjects as ro
        except Exception as exc:  # ImportError, or R's shared library failing to load
            raise RNotAvailableError(f"lme4 comparisons need R through rpy2, which failed to load ({exc}); "
                                     + _INSTALL) from exc
        finally:
            if saved is None:
                os.environ.pop("LD_LIBRARY_PATH", None)
            else:
                os.environ["LD_LIBRARY_PATH"] = saved
        try:
            ro.r("suppressPackageStartupMessages(library(lme4))")
        except Exception as exc:
            raise RNotAvailableError("R is installed but the lme4 package is not; " + _INSTALL) from exc
        _R.update(ro=ro, fit=ro.r(_R_FIT), lformula=ro.r(_R_LFORMULA))
    return _R


def lmer_status(singular: bool, convergence: list[str], warnings: list[str]) -> str:
    """lme4's outcome in one word, decided here for Python and for R's ``compare_lmer`` alike:
    "singular" (``isSingular``), "warning" (a convergence message or an R warning), or
    "converged". (A fit that raised an error is "failed".) Messages such as "rank deficient so
    dropping 1 column" do not make a warning: lme4 prints them for a fit it completed.

    >>> lmer_status(False, [], []), lmer_status(False, ["Model failed to converge"], []), lmer_status(True, [], [])
    ('converged', 'warning', 'singular')
    """
    if singular:
        return "singular"
    return "warning" if list(convergence) or list(warnings) else "converged"


def r_available() -> bool:
    """True when R, lme4 and rpy2 all load."""
    try:
        _r()
        return True
    except RNotAvailableError:
        return False


def _to_r_frame(data: pd.DataFrame, columns: list[str]):
    """Columns as R holds them: categoricals as factors (ordered ones as ordered factors), numbers
    as doubles, bools as logicals, text as character (R orders its levels itself), NaN as NA."""
    ro = _r()["ro"]
    cols = {}
    for c in columns:
        s = data[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            from ..formula.variables import r_label

            levels = [r_label(v) for v in s.cat.categories]
            codes = s.cat.codes.to_numpy().astype(int) + 1
            vec = ro.IntVector(np.where(codes == 0, ro.NA_Integer, codes).tolist())
            cls = ro.StrVector(["ordered", "factor"]) if s.cat.ordered else "factor"
            cols[c] = ro.r["structure"](vec, levels=ro.StrVector(levels), **{"class": cls})
        elif pd.api.types.is_bool_dtype(s):
            cols[c] = ro.BoolVector(s.to_numpy().tolist())
        elif pd.api.types.is_numeric_dtype(s):
            arr = s.to_numpy(dtype=float, na_value=np.nan)
            cols[c] = ro.FloatVector(np.where(np.isnan(arr), ro.NA_Real, arr)) if np.isnan(arr).any() \
                else ro.FloatVector(arr)
        else:
            from ..formula.variables import r_label

            values = [None if pd.isna(v) else r_label(v) for v in s.to_numpy(dtype=object)]
            cols[c] = ro.StrVector([ro.NA_Character if v is None else v for v in values])
    return ro.DataFrame(cols)


def _vector_arg(arg: Any, data: pd.DataFrame, name: str):
    """``weights=`` / ``offset=`` for R: a column name or one number per row, as a double vector."""
    if arg is None:
        return None
    ro = _r()["ro"]
    values = data[arg].to_numpy(dtype=float) if isinstance(arg, str) else values_by_row(arg, data, name)
    return ro.FloatVector(np.where(np.isnan(values), ro.NA_Real, values))


def from_r(expression: str) -> pd.DataFrame:
    """The data frame an R expression gives, as pandas: factors as categoricals (ordered kept),
    integers as int64 (float64 when they have NA), characters as objects, NA as missing.

    >>> df = from_r("lme4::cake")  # doctest: +SKIP
    >>> df.temperature.cat.ordered  # doctest: +SKIP
    True
    """
    with _r_session() as R:
        ro = R["ro"]
        try:
            frame = ro.r(f"as.data.frame({expression})")
        except Exception as exc:
            raise HierMIOError(f"R could not evaluate {expression!r}: {exc}") from exc
        out = {}
        for name in frame.names:
            col = frame.rx2(name)
            rclass = list(ro.r["class"](col))
            if "factor" in rclass:
                codes = np.asarray(ro.r["as.integer"](col), dtype=float)
                codes = np.where(np.isnan(codes), 0, codes).astype(int) - 1
                levels = list(ro.r["levels"](col))
                out[name] = pd.Categorical.from_codes(codes, categories=levels, ordered="ordered" in rclass)
            elif "logical" in rclass:
                vals = np.asarray(ro.r["as.integer"](col), dtype=float)
                out[name] = vals.astype(bool) if not np.isnan(vals).any() else \
                    pd.array([None if np.isnan(v) else bool(v) for v in vals], dtype="boolean")
            elif "character" in rclass:
                na = np.asarray(ro.r["is.na"](col), dtype=bool)
                out[name] = np.array([None if m else str(v) for v, m in zip(col, na)], dtype=object)
            elif "integer" in rclass:
                vals = np.asarray(ro.r["as.numeric"](col), dtype=float)
                out[name] = vals if np.isnan(vals).any() else vals.astype(np.int64)
            else:
                out[name] = np.asarray(ro.r["as.numeric"](col), dtype=float)
        return pd.DataFrame(out)


@dataclass
class LmerDesign:
    """lme4's own design for a formula and data (``lme4::lFormula``): the truth for formula semantics."""

    X: pd.DataFrame  # fixed-effects matrix, lme4's column names
    rows: np.ndarray  # positions (0-based) of the data rows used
    Z: Any  # scipy sparse n x m, columns keyed by ``z_keys``
    z_keys: list[tuple[str, str, str]]  # (grouping factor, level, coefficient) of each Z column
    cnms: list[tuple[str, list[str]]]  # (grouping factor, coefficient names) per random term
    flist: dict[str, list[str]]  # grouping factor -> levels
    offset: np.ndarray | None
    weights: np.ndarray | None
    messages: list[str]


def lformula(formula: str, data: pd.DataFrame | str, weights: Any = None, offset: Any = None) -> LmerDesign:
    """``lme4::lFormula(formula, data, weights, offset)``: the X, Z, names and rows lme4 would use.

    ``data`` is a pandas frame (sent to R column by column) or an R expression naming a data frame
    (``"lme4::sleepstudy"``), used as R holds it.

    >>> d = lformula("Reaction ~ Days + (Days | Subject)", "lme4::sleepstudy")  # doctest: +SKIP
    >>> list(d.X.columns), d.cnms  # doctest: +SKIP
    (['(Intercept)', 'Days'], [('Subject', ['(Intercept)', 'Days'])])
    """
    import scipy.sparse as sp

    with _r_session() as R:
        ro = R["ro"]
        if isinstance(data, str):
            frame = ro.r(f"as.data.frame({data})")
            n = int(ro.r["nrow"](frame)[0])
            if weights is not None or offset is not None:
                raise HierMIOError("weights and offset go with a pandas data frame")
            w = o = None
        else:
            frame = _to_r_frame(data, list(data.columns))
            n = len(data)
            w, o = _vector_arg(weights, data, "weights"), _vector_arg(offset, data, "offset")
        kw = {k: v for k, v in (("weights", w), ("offset", o)) if v is not None}
        try:
            out = R["lformula"](formula, frame, **kw)
        except Exception as exc:
            raise HierMIOError(f"lme4::lFormula failed on {formula!r}: {str(exc).strip()}") from exc
        res = {k: out.rx2(k) for k in out.names}
        names = [str(v) for v in res["X_names"]]
        X = np.asarray(ro.r["as.matrix"](res["X"]), dtype=float).reshape(-1, len(names), order="F") \
            if len(names) else np.zeros((0, 0))
        rows_pos = np.asarray(res["rows"], dtype=int) - 1 if n else np.zeros(0, int)
        dim = [int(v) for v in res["Zt_dim"]]
        Zt = sp.coo_matrix((np.asarray(res["Zt_x"], float), (np.asarray(res["Zt_i"], int), np.asarray(res["Zt_j"], int))),
                           shape=dim)
        cnms_names = [str(v) for v in res["cnms_names"]]
        cnms = [(g, [str(c) for c in cn]) for g, cn in zip(cnms_names, res["cnms"])]
        flist = {str(k): [str(v) for v in lv] for k, lv in zip(res["flist_names"], res["flist_levels"])}
        # Zt's rows: term by term, level-major, each level's coefficients in order
        keys = []
        for g, cn in cnms:
            for level in flist[g]:
                keys.extend((g, level, c) for c in cn)
        offset_v = np.asarray(res["offset"], float)
        weights_v = np.asarray(res["weights"], float)
        return LmerDesign(pd.DataFrame(X.reshape(len(rows_pos), -1), columns=names), rows_pos, Zt.T.tocsc(), keys,
                          cnms, flist, offset_v if offset_v.size else None, weights_v if weights_v.size else None,
                          [str(m) for m in res["messages"]])


@dataclass
class LmerFit:
    """lme4's answer, converted to Python objects (``fit`` keeps the R object for ``predict``)."""

    formula: str
    REML: bool
    status: str  # converged | singular | warning | failed
    time: float
    error: str | None = None
    messages: list[str] = field(default_factory=list)
    _fixef: pd.Series | None = field(default=None, repr=False)
    _se: pd.Series | None = field(default=None, repr=False)
    _ranef: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    _varcorr: pd.DataFrame | None = field(default=None, repr=False)
    sigma: float = float("nan")
    logLik: float = float("nan")  # noqa: N815 - lme4's name
    singular: bool = False
    converged: bool = False
    _r_fit: Any = field(default=None, repr=False)

    def _need_fit(self) -> None:
        if self.status == "failed":
            raise HierMIOError(f"lme4 failed to fit {self.formula!r}: {self.error}")

    def fixef(self) -> pd.Series:
        self._need_fit()
        return self._fixef.copy()

    def se(self) -> pd.Series:
        """lme4's standard errors of the fixed effects, ``sqrt(diag(vcov(fit)))`` (model-based)."""
        self._need_fit()
        return self._se.copy()

    def ranef(self) -> dict[str, pd.DataFrame]:
        self._need_fit()
        return {k: v.copy() for k, v in self._ranef.items()}

    def VarCorr(self) -> pd.DataFrame:  # noqa: N802
        self._need_fit()
        return self._varcorr.copy()

    @property
    def icc(self) -> pd.Series:
        """Intercept variance / (intercept variance + residual variance), per grouping factor."""
        self._need_fit()
        vc = self._varcorr
        resid = float(vc.loc[vc.grp == "Residual", "vcov"].iloc[0])
        out = {}
        for g in self._ranef:
            row = vc[(vc.grp == g) & (vc.var1 == "(Intercept)") & vc.var2.isna()]
            out[g] = float(row.vcov.iloc[0]) / (float(row.vcov.iloc[0]) + resid) if len(row) else np.nan
        return pd.Series(out, name="icc", dtype=float)

    def predict(self, newdata: pd.DataFrame, re_form: Any = None, allow_new_levels: bool = True) -> pd.Series:
        """lme4's ``predict(fit, newdata, re.form, allow.new.levels)``; ``re_form`` as in
        :meth:`hiermio.MIOFit.predict` (None, population level, or a formula of random terms)."""
        from ..fitting.results import _re_form_terms  # the one reading of re.form, shared with MIO's predict

        self._need_fit()
        chosen = _re_form_terms(re_form)
        cols = _used_columns(self.formula, newdata, need_response=False)
        try:
            with _r_session() as R:
                ro = R["ro"]
                kw = {"newdata": _to_r_frame(newdata, cols), "allow.new.levels": allow_new_levels}
                if chosen is not None:
                    kw["re.form"] = ro.Formula(" ".join(re_form.split())) if chosen else ro.NA_Logical
                pred = np.asarray(ro.r["predict"](self._r_fit, **kw), dtype=float)
        except Exception as exc:
            raise HierMIOError(f"lme4 could not predict: {exc}") from exc
        return pd.Series(pred, index=newdata.index, name="predicted")


def _typed_levels(data: pd.DataFrame, group: str, levels: list[str]) -> pd.Index:
    """lme4's level strings as the data's own values (308, not "308"), so that lme4's and MIO's
    ``ranef()`` join; interactions (``a:b``) stay strings, as in MIO's."""
    if group not in data.columns:
        return pd.Index(levels, name=group)
    from ..formula.variables import r_label

    col = data[group]
    values = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.unique(col.dropna())
    by_label = {r_label(v): v for v in values}
    return pd.Index([by_label.get(s, s) for s in levels], name=group)


def _used_columns(formula: str, data: pd.DataFrame, need_response: bool = True) -> list[str]:
    names = set().union(*required_columns(parse_formula(formula), response=need_response).values())
    missing = sorted(n for n in names if n not in data.columns)
    if missing and need_response:
        raise DataError(f"unknown column(s) {missing} in formula {formula!r}")
    return [c for c in data.columns if c in names]


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, weights: Any = None,  # noqa: N803 - lme4's name
         offset: Any = None) -> LmerFit:
    """Fit ``lme4::lmer(formula, data, REML, weights, offset)`` in R; never raises for lme4's own failures.

    ``weights`` and ``offset`` are column names or one number per row, as in :func:`hiermio.fit`.
    """
    REML = check_bool(REML, "REML")  # noqa: N806 - lme4's name; R would read "no" as an error, Python as True
    t0 = time.perf_counter()
    with _r_session() as R:
        return _lmer_result(R, formula, data, REML, t0, weights, offset)


def _lmer_result(R, formula: str, data: pd.DataFrame, REML: bool, t0: float, weights: Any = None,  # noqa: N803
                 offset: Any = None) -> LmerFit:
    ro = R["ro"]
    frame = _to_r_frame(data, _used_columns(formula, data))
    kw = {k: v for k, v in (("weights", _vector_arg(weights, data, "weights")),
                            ("offset", _vector_arg(offset, data, "offset"))) if v is not None}
    out = R["fit"](formula, frame, REML, **kw)
    elapsed = time.perf_counter() - t0
    res = {k: out.rx2(k) for k in out.names}
    msgs = list(dict.fromkeys(str(x) for key in ("warnings", "messages") for x in res[key]))
    if not res["ok"][0]:
        return LmerFit(formula, REML, "failed", elapsed, error=str(res["error"][0]), messages=msgs)
    conv = [str(x) for x in res["conv"]]
    msgs = list(dict.fromkeys(conv + msgs))
    singular = bool(res["singular"][0])
    status = lmer_status(singular, conv, [str(x) for x in res["warnings"]])
    names = list(res["fixef_names"])
    ranef = {}
    for g, item in zip(res["re_names"], res["re"]):
        d = {k: item.rx2(k) for k in item.names}
        ranef[str(g)] = pd.DataFrame(np.asarray(d["values"]), index=_typed_levels(data, str(g), list(d["levels"])),
                                     columns=list(d["cols"]))
    vc = pd.DataFrame({
        "grp": list(res["vc_grp"]),
        "var1": [None if v == "NA" or v is ro.NA_Character else str(v) for v in res["vc_var1"]],
        "var2": [None if v == "NA" or v is ro.NA_Character else str(v) for v in res["vc_var2"]],
        "vcov": np.asarray(res["vc_vcov"], float),
        "sdcor": np.asarray(res["vc_sdcor"], float),
    })
    return LmerFit(
        formula, REML, status, elapsed, messages=msgs,
        _fixef=pd.Series(np.asarray(res["fixef"], float), index=names, name="fixef"),
        _se=pd.Series(np.asarray(res["se"], float), index=names, name="se"),
        _ranef=ranef, _varcorr=vc, sigma=float(res["sigma"][0]), logLik=float(res["logLik"][0]),
        singular=singular, converged=not conv, _r_fit=res["fit"],
    )
