"""Model matrices from a parsed formula and a data frame.

The fixed part ``X`` and each random term's covariates are built by formulaic; a random term
``(expr | g)`` with q covariates and K levels becomes q*K columns ``z * 1[g == k]`` of the
augmented design ``[X : Z]``. ``Z`` is never formed densely: each term keeps its n x q covariate
values and the level code of every row, which is all the sufficient statistics need.

>>> import pandas as pd
>>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "x": [0., 1, 0, 1, 0, 1], "g": list("aabbcc")})
>>> d = build_design(parse_formula("y ~ x + (1 | g)"), df)
>>> d.X.shape, d.n_columns, list(d.terms[0].levels)
((6, 2), 3, ['a', 'b', 'c'])
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg
from formulaic import Formula, model_matrix

from .exceptions import DataError, FormulaError
from .formula import ParsedFormula, RandomTerm, parse_formula

__all__ = ["TermDesign", "Design", "build_design", "group_labels", "required_columns"]


@dataclass
class TermDesign:
    """The columns of one random term: covariate values and level of every row."""

    term: RandomTerm
    coef_names: tuple[str, ...]
    levels: pd.Index
    codes: np.ndarray  # (n,) level code of each row, 0..K-1
    values: np.ndarray  # (n, q) covariate values z
    spec: Any = field(repr=False)  # formulaic ModelSpec, to rebuild z on new data

    @property
    def q(self) -> int:
        return len(self.coef_names)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_columns(self) -> int:
        return self.q * self.n_levels


@dataclass
class Design:
    """Response, fixed-effects matrix and random-term columns for the rows used in a fit."""

    formula: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    fixed_spec: Any = field(repr=False)
    terms: list[TermDesign] = field(default_factory=list)
    rows: pd.Index = field(default_factory=lambda: pd.RangeIndex(0))
    n_dropped: int = 0
    data: pd.DataFrame | None = field(default=None, repr=False)  # the rows used, for cluster-level features

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def n_columns(self) -> int:
        """Number of random-effect columns (the binaries of the optimisation)."""
        return sum(t.n_columns for t in self.terms)

    def term_offsets(self) -> np.ndarray:
        """Index of each term's first column in the stacked random-effect vector."""
        return np.concatenate([[0], np.cumsum([t.n_columns for t in self.terms])]).astype(int)

    def fixed_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The fixed-effects matrix for new data, with the training coding of categoricals."""
        return _finite(_rebuild(self.fixed_spec, data, "the fixed part"), "fixed part")

    def term_values(self, k: int, data: pd.DataFrame) -> np.ndarray:
        """The covariates of term ``k`` for new data."""
        t = self.terms[k]
        return _finite(_rebuild(t.spec, data, f"random term {t.term.label}"), f"random term {t.term.label}")


def _rebuild(spec: Any, data: pd.DataFrame, where: str) -> np.ndarray:
    """A training model spec applied to new data; a category unseen in training is an error, since
    formulaic would silently code it as the reference level."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matrix = np.asarray(spec.get_model_matrix(data), dtype=float)
    for w in caught:
        if w.category.__name__ == "DataMismatchWarning":
            raise DataError(f"new data has categories not seen in training in {where}: {w.message}")
    return matrix


def group_labels(data: pd.DataFrame, group: str) -> pd.Series:
    """Level of every row for a grouping factor ``g`` or an interaction ``a:b``.

    >>> group_labels(pd.DataFrame({"a": [1, 1], "b": ["x", "y"]}), "a:b").tolist()
    ['1:x', '1:y']
    """
    cols = group.split(":")
    if len(cols) == 1:
        return data[cols[0]]
    out = data[cols[0]].astype(str)
    for c in cols[1:]:
        out = out + ":" + data[c].astype(str)
    return out.rename(group)


def _finite(a: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        bad = int((~np.isfinite(a)).any(axis=1).sum()) if a.ndim == 2 else int((~np.isfinite(a)).sum())
        raise DataError(f"the {what} evaluates to NaN or infinity in {bad} row(s) (e.g. log of a non-positive value)")
    return a


def _required(expr: str) -> set[str]:
    try:
        return set(Formula(expr).required_variables)
    except Exception as exc:  # formulaic's syntax errors point at the token; keep their text
        raise FormulaError(f"cannot parse {expr!r}: {exc}") from None


def required_columns(parsed: ParsedFormula, response: bool = True) -> dict[str, set[str]]:
    """The data columns each part of the formula uses, keyed by a description of the part.

    >>> {part: sorted(cols) for part, cols in required_columns(parse_formula("y ~ np.log(x) + (1 + z | g)")).items()}
    {"the response 'y'": ['y'], "the fixed part 'np.log(x)'": ['x'], 'random term (1 + z | g)': ['g', 'z']}
    """
    needed = {f"the response {parsed.response!r}": _required(parsed.response)} if response else {}
    needed[f"the fixed part {parsed.fixed!r}"] = _required(parsed.fixed)
    for t in parsed.random:
        needed[f"random term {t.label}"] = _required(t.expr) | set(t.group_columns)
    return needed


def _check_columns(needed: dict[str, set[str]], data: pd.DataFrame) -> None:
    for where, names in needed.items():
        missing = sorted(n for n in names if n not in data.columns)
        if missing:
            hints = []
            for m in missing:
                close = difflib.get_close_matches(m, [str(c) for c in data.columns], n=1)
                hints.append(f"{m!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise FormulaError(f"unknown column {', '.join(hints)} in {where}; the data has {len(data.columns)} columns")


def _aliased_columns(X: np.ndarray, names: tuple[str, ...]) -> list[str]:
    """Names of fixed-effect columns that are linear combinations of earlier ones."""
    if X.shape[1] == 0:
        return []
    scale = np.linalg.norm(X, axis=0)
    scale[scale == 0] = 1.0
    _, r, piv = scipy.linalg.qr(X / scale, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    rank = int(np.sum(d > d.max() * max(X.shape) * np.finfo(float).eps * 10)) if d.size else 0
    return [names[i] for i in sorted(piv[rank:])]


def build_design(
    formula: ParsedFormula | str,
    data: pd.DataFrame,
    na_action: Literal["drop", "raise"] = "drop",
) -> Design:
    """Validate ``data`` against ``formula`` and build the fixed and random model matrices.

    Rows with a missing value in any column the formula uses are dropped and counted
    (``na_action="drop"``) or refused (``"raise"``).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1., None, 3, 4], "x": [1., 2, 3, 4], "g": [1, 1, 2, 2]})
    >>> build_design("y ~ x + (1 | g)", df).n_dropped
    1
    """
    parsed = parse_formula(formula) if isinstance(formula, str) else formula
    if not isinstance(data, pd.DataFrame):
        try:
            data = pd.DataFrame(data)
        except Exception:
            raise DataError(f"data must be a pandas DataFrame (or convertible to one), got {type(data).__name__}") from None
    if na_action not in ("drop", "raise"):
        raise DataError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
    if len(data) == 0:
        raise DataError("data has no rows")

    needed = required_columns(parsed)
    _check_columns(needed, data)
    used = sorted(set().union(*needed.values()), key=list(data.columns).index)

    if parsed.response in data.columns:
        col = data[parsed.response]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            raise DataError(f"response {parsed.response!r} must be numeric, but its dtype is {col.dtype}")

    missing = data[used].isna().any(axis=1)
    n_dropped = int(missing.sum())
    if n_dropped:
        counts = data[used].isna().sum()
        which = ", ".join(f"{c!r} ({int(v)})" for c, v in counts.items() if v)
        if na_action == "raise":
            raise DataError(f"{n_dropped} row(s) have missing values in {which}; pass na_action='drop' to drop them")
        data = data.loc[~missing]
    if len(data) == 0:
        raise DataError("no rows left after dropping rows with missing values")

    try:
        mm = model_matrix(parsed.fixed_formula, data, na_action="ignore")
    except Exception as exc:
        raise FormulaError(f"cannot build the fixed part {parsed.fixed_formula!r}: {exc}") from None
    lhs = np.asarray(mm.lhs, dtype=float)
    if lhs.ndim != 2 or lhs.shape[1] != 1:
        raise DataError(f"response {parsed.response!r} must be a single numeric column, got {lhs.shape[1]} columns")
    y = _finite(lhs[:, 0], f"response {parsed.response!r}")
    X = _finite(np.asarray(mm.rhs, dtype=float), "fixed part")
    fixed_names = tuple(_lme4_name(c) for c in mm.rhs.model_spec.column_names)
    aliased = _aliased_columns(X, fixed_names)
    if aliased:
        raise DataError(
            f"the fixed part is rank deficient: column(s) {', '.join(map(repr, aliased))} are linear combinations "
            "of the others; drop them from the formula"
        )

    terms = []
    for t in parsed.random:
        try:
            zm = model_matrix(t.expr, data, na_action="ignore")
        except Exception as exc:
            raise FormulaError(f"cannot build random term {t.label}: {exc}") from None
        values = _finite(np.asarray(zm, dtype=float), f"random term {t.label}")
        if values.shape[1] == 0:
            raise FormulaError(f"random term {t.label} has no covariates")
        labels = group_labels(data, t.group)
        codes, levels = _factorize(labels)
        if len(levels) < 2:
            raise DataError(
                f"grouping factor {t.group!r} of term {t.label} has a single level ({levels[0]!r}); "
                "a random effect needs at least two levels"
            )
        coef_names = tuple(_lme4_name(c) for c in zm.model_spec.column_names)
        terms.append(TermDesign(t, coef_names, levels, codes, values, zm.model_spec))

    return Design(
        formula=parsed,
        y=y,
        X=X,
        fixed_names=fixed_names,
        fixed_spec=mm.rhs.model_spec,
        terms=terms,
        rows=data.index,
        n_dropped=n_dropped,
        data=data,
    )


def _factorize(labels: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Level codes in the order lme4 uses: a factor's level order, else sorted values."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        cats = labels.cat.remove_unused_categories()
        return cats.cat.codes.to_numpy().astype(np.intp), pd.Index(cats.cat.categories)
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.intp), pd.Index(uniques)


_TREATMENT = re.compile(r"([A-Za-z_.][A-Za-z0-9_.]*)\[T\.([^\]]+)\]")


def _lme4_name(name: str) -> str:
    """formulaic's column names in R's spelling, so coefficients line up with lme4's by name.

    >>> _lme4_name("Intercept"), _lme4_name("sex[T.M]"), _lme4_name("x:sex[T.M]")
    ('(Intercept)', 'sexM', 'x:sexM')
    """
    if name == "Intercept":
        return "(Intercept)"
    return _TREATMENT.sub(lambda m: m.group(1) + m.group(2), name)
