"""R's ``model.matrix``: columns, contrasts and names from expanded terms and evaluated variables.

For each term, each factor in it is coded by contrasts or by indicators following R's rule
(``TermCode`` in R's ``model.c``): contrasts when the term without that factor appears earlier in
the model (or is empty), indicators otherwise; with no intercept, the first factor of the first
term that has one gets indicators. Unordered factors take treatment contrasts, ordered ones
polynomial contrasts (``.L``, ``.Q``, ``.C``, ``^4``), as R's default ``options("contrasts")``.
Columns of an interaction vary the first variable fastest and are named ``a:b`` with each part
spelled as R spells it (``sexM``, ``poly(x, 2)1``, ``ordered(f).L``).

>>> import numpy as np
>>> from hiermio.formula.variables import Value
>>> f = Value("factor", np.array([0, 1, 2, 1]), ["a", "b", "c"], ["a", "b", "c"])
>>> x = Value("numeric", np.array([1., 2, 3, 4]))
>>> from hiermio.formula.terms import expand_terms
>>> from hiermio.formula.rsyntax import parse
>>> layout = ColumnLayout.build(expand_terms(parse("x * f")), {"x": x, "f": f})
>>> layout.names
['(Intercept)', 'x', 'fb', 'fc', 'x:fb', 'x:fc']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.exceptions import DataError
from .terms import Terms
from .variables import Value

__all__ = ["ColumnLayout", "contrast_matrix", "aliased_columns"]


def contrast_matrix(levels: list[str], kind: str, indicators: bool) -> tuple[np.ndarray, list[str]]:
    """(L x k coding matrix, column suffixes) for a factor's levels, as R's ``contr.*`` give them.

    >>> contrast_matrix(["a", "b", "c"], "poly", False)[1], contrast_matrix(["a", "b", "c"], "sum", False)[1]
    (['.L', '.Q'], ['1', '2'])
    """
    L = len(levels)
    if indicators:
        return np.eye(L), list(levels)
    if kind == "treatment":
        return np.eye(L)[:, 1:], list(levels[1:])
    if kind == "sum":
        M = np.vstack([np.eye(L - 1), -np.ones((1, L - 1))])
        return M, [str(i) for i in range(1, L)]
    if kind == "helmert":
        M = np.zeros((L, L - 1))
        for j in range(1, L):
            M[:j, j - 1] = -1.0
            M[j, j - 1] = j
        return M, [str(i) for i in range(1, L)]
    if kind == "poly":
        scores = np.arange(1, L + 1, dtype=float)
        V = np.vander(scores - scores.mean(), L, increasing=True)
        Q, R = np.linalg.qr(V)
        Z = Q * np.sign(np.diag(R))
        names = [".L", ".Q", ".C"] + [f"^{i}" for i in range(4, L)]
        return Z[:, 1:], names[: L - 1]
    raise ValueError(f"unknown contrasts {kind!r}")


@dataclass(frozen=True)
class _Part:
    """How one variable enters one term: its coding matrix for a factor, or its numeric columns."""

    key: str
    factor: bool
    coding: np.ndarray | None  # (L, k) for factors
    suffixes: tuple[str, ...]


@dataclass(frozen=True)
class ColumnLayout:
    """The columns a set of terms makes: learned once, applied to training and new data alike."""

    intercept: bool
    terms: tuple[tuple[_Part, ...], ...]
    names: tuple[str, ...] | list[str]

    @classmethod
    def build(cls, terms: Terms, values: dict[str, Value]) -> "ColumnLayout":
        """Decide coding and names from the training values (factor levels already final)."""
        keys = terms.variable_names
        is_factor = {k: values[k].kind != "numeric" for k in keys}
        codes = _term_codes(terms, [is_factor[k] for k in keys])
        parts_all, names = [], ["(Intercept)"] if terms.intercept else []
        for term, code in zip(terms.terms, codes):
            parts = []
            for var, c in zip(term, code):
                key = keys[var]
                v = values[key]
                if is_factor[key]:
                    f = v.as_factor()
                    if len(f.levels) < 2 and c == 1:
                        raise DataError(f"factor {key!r} has a single level ({f.levels[0] if f.levels else 'none'}) "
                                        "in the rows used; contrasts need at least two levels")
                    kind = f.contrasts or ("poly" if f.ordered else "treatment")
                    M, suffixes = contrast_matrix(f.levels, kind, indicators=(c == 2))
                    parts.append(_Part(key, True, M, tuple(suffixes)))
                else:
                    k = v.values.shape[1] if v.values.ndim == 2 else 1
                    if k == 1:
                        suffixes = ("",)
                    else:
                        suffixes = tuple(v.colnames) if v.colnames else tuple(str(i) for i in range(1, k + 1))
                    parts.append(_Part(key, False, None, suffixes))
            parts_all.append(tuple(parts))
            names += _kron_names(parts)
        return cls(terms.intercept, tuple(parts_all), names)

    @property
    def n_columns(self) -> int:
        return len(self.names)

    @property
    def keys(self) -> set[str]:
        """The variables :meth:`matrix` reads.

        >>> from hiermio.formula.terms import parse_formula
        >>> from hiermio.formula.variables import Value
        >>> vals = {"x": Value("numeric", np.array([1.0, 2.0])), "z": Value("numeric", np.array([0.0, 1.0]))}
        >>> sorted(ColumnLayout.build(parse_formula("y ~ x * z + (1 | g)").fixed_terms, vals).keys)
        ['x', 'z']
        """
        return {part.key for parts in self.terms for part in parts}

    def matrix(self, values: dict[str, Value], n: int) -> np.ndarray:
        """The model matrix for values (factors coded on the training levels)."""
        out = np.empty((n, self.n_columns))
        j = 0
        if self.intercept:
            out[:, 0] = 1.0
            j = 1
        for parts in self.terms:
            block = None
            for part in parts:
                v = values[part.key]
                if part.factor:
                    codes = v.as_factor().values
                    m = part.coding[codes]
                else:
                    m = v.values.reshape(n, -1).astype(float, copy=False)
                # first variable fastest: new columns are the outer block
                block = m if block is None else (block[:, None, :] * m[:, :, None]).reshape(n, -1)
            if block is None:
                block = np.ones((n, 1))
            out[:, j: j + block.shape[1]] = block
            j += block.shape[1]
        return out


def _kron_names(parts: list[_Part]) -> list[str]:
    names = [""]
    for p in parts:
        names = [(f"{s}:" if s else "") + p.key + suffix for suffix in p.suffixes for s in names]
    return names


def _term_codes(terms: Terms, is_factor: list[bool]) -> list[list[int]]:
    """Per term, per variable: 1 for contrasts, 2 for indicators (R's TermCode)."""
    codes = []
    for i, term in enumerate(terms.terms):
        row = []
        for var in term:
            rest = set(term) - {var}
            if not rest:
                row.append(1)
            else:
                row.append(1 if any(rest <= set(terms.terms[j]) for j in range(i)) else 2)
        codes.append(row)
    if not terms.intercept:  # the first factor of the first term that has one gets indicators
        done = False
        for i, term in enumerate(terms.terms):
            for pos, var in enumerate(term):
                if is_factor[var]:
                    codes[i][pos] = 2
                    done = True
                    break
            if done:
                break
    return codes


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of columns that are (numerically) linear combinations of earlier ones.

    R's ``qr(X, tol = 1e-7, LAPACK = FALSE)`` (LINPACK's ``dqrdc2``), which lme4 uses to drop
    columns: a column whose norm, after projecting out the columns kept before it, falls below
    ``tol`` times its original norm is moved to the end and dropped.

    >>> aliased_columns(np.array([[1., 1, 2], [1, 2, 3], [1, 3, 4]]))
    [2]
    """
    n, p = X.shape
    kept: list[int] = []
    dropped: list[int] = []
    Q = np.zeros((n, 0))
    for j in range(p):
        col = X[:, j].astype(float)
        norm0 = np.linalg.norm(col)
        if norm0 == 0:
            dropped.append(j)
            continue
        r = col - Q @ (Q.T @ col)
        r = r - Q @ (Q.T @ r)  # reorthogonalise: Gram-Schmidt twice is as stable as Householder
        if np.linalg.norm(r) < tol * norm0:
            dropped.append(j)
            continue
        Q = np.column_stack([Q, r / np.linalg.norm(r)])
        kept.append(j)
    return dropped
