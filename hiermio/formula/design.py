"""lme4's model frame and model matrices from a parsed formula and a data frame.

As ``lme4::lFormula`` does: every variable of the formula (response, fixed part, random terms,
grouping factors, offsets, weights) is evaluated on the data, rows with a missing value in any of
them are dropped and counted, unused factor levels are dropped, the fixed part's columns are made by
R's ``model.matrix`` rules (:mod:`hiermio.formula.modelmatrix`) and columns that are linear combinations of
earlier ones are dropped with lme4's message. A random term ``(expr | g)`` with q covariates and K
levels becomes q*K columns ``z * 1[g == k]``; ``Z`` is never formed densely: each term keeps its
n x q covariate values and every row's level code, which is all the sufficient statistics need.

What the training data taught (transform parameters, factor levels, column coding) is kept in
the design, so new data are built with the training transforms (:meth:`Design.fixed_matrix`).

>>> import pandas as pd
>>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "x": [0., 1, 0, 1, 0, 1], "g": list("aabbcc")})
>>> d = build_design(parse_formula("y ~ x + (1 | g)"), df)
>>> d.X.shape, d.n_columns, list(d.terms[0].levels)
((6, 2), 3, ['a', 'b', 'c'])
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.exceptions import DataError, FormulaError, HierMIOWarning
from ..data.sources import RowsElsewhere
from .terms import ParsedFormula, RandomTerm, Terms, parse_formula
from .modelmatrix import ColumnLayout, aliased_columns
from .rsyntax import Name, Node, Paren, deparse, parse, walk
from .variables import (NA_CONSTANTS, Value, column_factor, combine_factors, evaluate, factor_of_numbers, r_label,
                        referenced_columns)

__all__ = ["TermDesign", "Design", "RowBlock", "FrameValues", "model_frame_values", "build_design", "group_labels",
           "required_columns", "vector_args_as_columns", "values_by_row", "carry_vector_options", "random_design_matrix",
           "group_parts", "dropped_rows_messages", "rank_messages", "check_rows_enough", "check_term",
           "WEIGHT_RATIO_MAX", "WEIGHT_MAGNITUDE_MAX", "weight_range", "check_weight_range"]

_BLOCK_ROWS = 1 << 16  # rows per block of the passes over rows in memory
# the widest range of positive prior weights a fit accepts, and the bounds of the largest weight
# (see check_weight_range)
WEIGHT_RATIO_MAX = 1e8
WEIGHT_MAGNITUDE_MAX = 1e150


@dataclass
class TermDesign:
    """The columns of one random term: covariate values and level of every row."""

    term: RandomTerm
    coef_names: tuple[str, ...]
    levels: pd.Index  # level labels: a single column's own values, else R's strings ("a:b")
    codes: np.ndarray  # (n,) level code of each row, 0..K-1
    values: np.ndarray  # (n, q) covariate values z
    layout: ColumnLayout = field(repr=False)
    level_strings: tuple[str, ...] = field(default=(), repr=False)  # levels as R spells them
    sizes: np.ndarray | None = field(default=None, repr=False)  # rows per level, when the rows are not in memory

    @property
    def level_sizes(self) -> np.ndarray:
        """Rows of each level."""
        return self.sizes if self.codes is None else np.bincount(self.codes, minlength=self.n_levels)

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
    fixed_names: tuple[str, ...]
    terms: list[TermDesign] = field(default_factory=list)
    rows: pd.Index = field(default_factory=lambda: pd.RangeIndex(0))
    n_dropped: int = 0
    data: pd.DataFrame | None = field(default=None, repr=False)  # the rows used, for cluster-level features
    weights: np.ndarray | None = None  # prior weights (lme4's weights=), None for 1
    offset: np.ndarray | None = None  # known part of the linear predictor, None for 0
    dropped_columns: tuple[str, ...] = ()  # fixed columns dropped as linear combinations of others
    messages: list[str] = field(default_factory=list)
    _state: dict = field(default_factory=dict, repr=False)  # learned transform parameters
    _levels: dict = field(default_factory=dict, repr=False)  # training levels of factor variables
    _numeric: set = field(default_factory=set, repr=False)  # variables that were numeric in training
    _fixed_layout: ColumnLayout | None = field(default=None, repr=False)
    _fixed_keep: np.ndarray | None = field(default=None, repr=False)
    weights_column: str | None = None  # the column that holds the weights ("(weights)" for an array)
    offset_column: str | None = None  # the column that holds the offset= argument
    # data read in partitions (:mod:`hiermio.formula.streaming`): the rows stay there, y, X, rows and the
    # terms' codes and values are None, and every use of the rows is a pass over ``source``
    source: Any = field(default=None, repr=False)
    n_rows: int | None = None
    # in memory, X is built from the evaluated fixed-part variables (``_fixed_values``: the frame's
    # own columns when no row was dropped) when first asked for (:attr:`X`); a fit reads it block by
    # block instead. Each block's column sums and absolute sums (blocks of ``_BLOCK_ROWS`` rows)
    # recognise the values the design was built from.
    _X: np.ndarray | None = field(default=None, repr=False)
    _X_sums: np.ndarray | None = field(default=None, repr=False)
    _fixed_values: dict | None = field(default=None, repr=False)

    @property
    def X(self) -> np.ndarray | None:
        """The fixed-effects matrix of the rows used (None for data read in partitions).

        In memory it is built from the evaluated variables when first asked for, and kept: a fit does
        not ask (its pass over the rows builds blocks), so it holds no n x p copy.
        """
        if self._X is None and self.in_memory and self._fixed_values is not None:
            out = np.empty((self.n, self.p))
            for b, sl in enumerate(_block_slices(self.n)):
                out[sl] = self._fixed_block(b, sl)
            self._X = out
        return self._X

    def _fixed_block(self, b: int, sl: slice) -> np.ndarray:
        """Rows ``sl`` (block ``b``) of X, from the variables as evaluated on all the rows (so every
        factor, type and transform is what the fit saw), checked against the block's sums."""
        Xb = _layout_rows(self._fixed_layout, self._fixed_values, sl)[:, self._fixed_keep]
        total, size = self._X_sums[b]
        off = np.abs(Xb.sum(axis=0) - total) > 1e-9 * size + 1e-300
        if off.any():
            raise DataError(f"column {self.fixed_names[int(np.argmax(off))]!r} of the fixed part no longer has the "
                            "values this design was built from: were the data (the frame, or an array it wraps) "
                            "changed in place after the fit? Refit on the data as they are now")
        return Xb

    @property
    def n(self) -> int:
        return len(self.y) if self.y is not None else int(self.n_rows)

    @property
    def p(self) -> int:
        return len(self.fixed_names)

    @property
    def in_memory(self) -> bool:
        """The rows are here (a pandas frame), not in a source read in partitions."""
        return self.source is None

    def require_rows(self, what: str) -> None:
        """Refuse, by name, what needs every training row in memory when the data were read in partitions."""
        if not self.in_memory:
            raise DataError(f"{what} needs the training rows in memory, but this fit read its data in partitions "
                            f"from {self.source.description}; fit on a pandas DataFrame for it")

    def row_blocks(self, rows: int = _BLOCK_ROWS) -> Iterator["RowBlock"]:
        """The rows used (in memory), in blocks of at most ``rows``."""
        self.require_rows("row_blocks")
        lazy = self._X is None and rows == _BLOCK_ROWS
        for b, sl in enumerate(_block_slices(self.n, rows)):
            yield RowBlock(self._fixed_block(b, sl) if lazy else self.X[sl], self.y_adjusted[sl],
                           None if self.weights is None else self.weights[sl],
                           [t.codes[sl] for t in self.terms], [t.values[sl] for t in self.terms], self.rows[sl],
                           None if self.offset is None else self.offset[sl])

    def map_blocks(self, fn: Callable[["RowBlock"], Any], merge: Callable[[Any, Any], Any], desc: str,
                   progress: bool | None = None) -> Any:
        """``fn`` of every block of the rows used, combined by ``merge``: the blocks in memory, or
        the source's partitions (on dask's workers for a dask source).

        >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1., 2, 3], "g": [0, 1, 1]}))
        >>> d.map_blocks(len, lambda a, b: a + b, "rows")
        3
        """
        if self.in_memory:
            out = None
            for block in self.row_blocks():
                s = fn(block)
                out = s if out is None else merge(out, s)
            return out
        return self.source.map_reduce(lambda frame: fn(self.block_of(frame)), merge, self.source_columns(), desc=desc,
                                      progress=progress)

    def source_columns(self) -> list[str]:
        """The columns of the data the model uses."""
        cols = set(self.required_columns(response=True))
        cols |= {c for c in (self.weights_column,) if c is not None}
        return sorted(cols)

    def restricted(self, sizes: Sequence[np.ndarray], description: str) -> tuple["Design", np.ndarray]:
        """The design of a subset of its rows, known by its rows per level (``sizes``, one array per
        term): levels without rows are dropped, as a design built from those rows would have none.
        Returns it (its rows are nowhere: only statistics describe them) and the kept random-effect
        columns. Fits on cross-validation folds and half-samples of partitioned data use it.

        >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1., 2, 3], "g": list("abc")}))
        >>> sub, cols = d.restricted([np.array([2, 0, 1])], "two levels")
        >>> list(sub.terms[0].levels), cols.tolist(), sub.n
        (['a', 'c'], [0, 2], 3)
        """
        terms, columns = [], []
        for off, t, size in zip(self.term_offsets(), self.terms, sizes):
            keep = np.flatnonzero(np.asarray(size) > 0)
            terms.append(replace(t, levels=t.levels[keep], codes=None, values=None, sizes=np.asarray(size)[keep],
                                 level_strings=tuple(t.level_strings[k] for k in keep) if t.level_strings else ()))
            columns.append(off + (keep[:, None] * t.q + np.arange(t.q)).ravel())
        n = int(sum(sizes[0])) if len(sizes) else self.n
        sub = replace(self, y=None, _X=None, _X_sums=None, _fixed_values=None, terms=terms, rows=None, data=None,
                      weights=None, offset=None, messages=[], source=RowsElsewhere(description), n_rows=n)
        return sub, (np.concatenate(columns) if columns else np.zeros(0, int)).astype(int)

    def block_of(self, frame: pd.DataFrame) -> "RowBlock":
        """The rows of ``frame`` that the model uses (complete in every variable), on the training coding.

        >>> d = build_design("y ~ x + (1 | g)", pd.DataFrame({"y": [1., 2, 3], "x": [0., 1, 2], "g": list("aab")}))
        >>> b = d.block_of(pd.DataFrame({"y": [5., None], "x": [1., 1], "g": ["b", "a"]}))
        >>> b.X.tolist(), b.codes
        ([[1.0, 1.0]], [array([1])])
        """
        fv = model_frame_values(self.formula, frame, self._state, self.weights_column, self.offset_column, learn=False)
        missing, _ = fv.missing()
        keep = np.flatnonzero(~missing)
        values = {k: self._recode(k, v.take(keep), fv.where_of[k]) for k, v in fv.values.items()}
        n = len(keep)
        y = _finite(_numeric_vector(values[fv.response_key], f"response {self.formula.response!r}"),
                    f"response {self.formula.response!r}")
        X = _finite(self._fixed_layout.matrix(values, n), "fixed part", self._fixed_layout.names)[:, self._fixed_keep]
        w, offset = fv.used_weights(keep), fv.total_offset(keep)
        codes, zs = [], []
        for t, g in zip(self.terms, fv.groups):
            c, strings = _codes_on(t.level_strings, g.take(keep))
            if (c < 0).any():
                raise DataError(f"grouping factor {t.term.group!r} has level(s) {pd.unique(strings[c < 0])[:5].tolist()} "
                                "that the first pass over the data did not see: did the data change between passes?")
            codes.append(c)
            zs.append(_finite(t.layout.matrix(values, n), f"random term {t.term.label}", t.layout.names))
        return RowBlock(X, y if offset is None else y - offset, w, codes, zs, frame.index[keep], offset)

    @property
    def n_columns(self) -> int:
        """Number of random-effect columns (the binaries of the optimisation)."""
        return sum(t.n_columns for t in self.terms)

    @property
    def y_adjusted(self) -> np.ndarray:
        """The response minus the offset: what the linear predictor X beta + Z gamma fits."""
        return self.y if self.offset is None else self.y - self.offset

    @property
    def group_terms(self) -> list[TermDesign]:
        """One term per grouping factor (the first that uses it)."""
        seen: dict[str, TermDesign] = {}
        for t in self.terms:
            seen.setdefault(t.term.group, t)
        return list(seen.values())

    def term_offsets(self) -> np.ndarray:
        """Index of each term's first column in the stacked random-effect vector."""
        return np.concatenate([[0], np.cumsum([t.n_columns for t in self.terms])]).astype(int)

    # ------------------------------------------------------------------ new data
    def required_columns(self, random: bool = True, response: bool = False) -> list[str]:
        """Data columns needed to build the design for new rows."""
        parts = required_columns(self.formula, response=response)
        if not random:
            parts = {k: v for k, v in parts.items() if not k.startswith("random term")}
        cols = set().union(*parts.values()) if parts else set()
        if self.offset_column is not None:
            cols.add(self.offset_column)
        return sorted(cols)

    def _new_values(self, nodes: list[Node], data: pd.DataFrame, where: str) -> dict[str, Value]:
        out = {}
        for node in nodes:
            key = deparse(node)
            try:
                v = evaluate(node, data, self._state, learn=False)
            except FormulaError as exc:
                raise DataError(f"new data: {exc} (in {where})") from exc
            out[key] = self._recode(key, v, where)
        return out

    def _recode(self, key: str, v: Value, where: str) -> Value:
        """A new-data value on the training coding: factors on the training levels."""
        if key in self._numeric:
            if v.kind not in ("numeric", "logical"):
                raise DataError(f"variable {key!r} in {where} was numeric in training but is {v.kind} in the new "
                                "data")
            return v
        if key not in self._levels:
            return v
        train = self._levels[key]
        codes, strings = _codes_on(train, v)
        if (codes == -2).any():
            unseen = pd.unique(strings[codes == -2])[:5].tolist()
            raise DataError(f"new data has level(s) {unseen} of {key!r} (in {where}) that training did not have; "
                            f"training levels: {train[:10]}{' ...' if len(train) > 10 else ''}")
        return Value("factor", codes, list(train), list(train))

    def fixed_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The fixed-effects matrix for new data, with the training transforms and coding."""
        terms = self.formula.fixed_terms
        values = self._new_values(list(terms.variables), data, "the fixed part")
        _no_missing(values, "the fixed part")
        X = _finite(self._fixed_layout.matrix(values, len(data)), "fixed part")
        return X[:, self._fixed_keep]

    def term_values(self, k: int, data: pd.DataFrame) -> np.ndarray:
        """The covariates of random term ``k`` for new data."""
        t = self.terms[k]
        values = self._new_values(list(t.term.terms.variables), data, f"random term {t.term.label}")
        _no_missing(values, f"random term {t.term.label}")
        return _finite(t.layout.matrix(values, len(data)), f"random term {t.term.label}")

    def offset_for(self, data: pd.DataFrame) -> np.ndarray:
        """The formula's offsets (and a named ``offset=`` column) evaluated on new data."""
        total = np.zeros(len(data))
        nodes = list(self.formula.fixed_terms.offsets)
        for node in nodes:
            total += _numeric_vector(self._new_values([node], data, "offset()")[deparse(node)], deparse(node))
        col = self.offset_column
        if col is not None:
            if col not in data.columns:
                raise DataError(f"the fit has an offset= argument; new data need it too, as column {col!r}")
            node = Name((0, 0), col)
            total += _numeric_vector(self._new_values([node], data, "offset")[deparse(node)], col)
        return total

    def response_for(self, data: pd.DataFrame) -> np.ndarray:
        """The response evaluated on new data (with the training transforms)."""
        v = self._new_values([self.formula.response_node], data, f"the response {self.formula.response!r}")
        return _numeric_vector(v[deparse(self.formula.response_node)], f"response {self.formula.response!r}")

    def group_codes(self, k: int, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(level code of each new row, -1 for a level unseen in training; the rows' level strings).

        Levels are matched as R matches them, by their spelling: a fit on integer ids knows the
        row whose id is the string ``"309"``.
        """
        t = self.terms[k]
        labels = group_strings(t.term, data)
        index = {s: i for i, s in enumerate(t.level_strings)}
        codes = np.array([index.get(s, -1) if s is not None else -1 for s in labels], dtype=np.intp)
        return codes, labels


@dataclass
class RowBlock:
    """Some of the rows a model uses: what the sufficient statistics and the residual passes read."""

    X: np.ndarray  # (n_b, p) fixed columns
    y: np.ndarray  # response minus offset
    weights: np.ndarray | None
    codes: list[np.ndarray]  # per random term, each row's level
    values: list[np.ndarray]  # per random term, (n_b, q) covariates
    index: pd.Index
    offset: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "RowBlock":
        """The rows at positions ``idx``."""
        return RowBlock(self.X[idx], self.y[idx], None if self.weights is None else self.weights[idx],
                        [c[idx] for c in self.codes], [v[idx] for v in self.values], self.index[idx],
                        None if self.offset is None else self.offset[idx])

    def random_matrix(self, term_offsets: np.ndarray, n_columns: int) -> sp.csr_matrix:
        """This block's rows of Z (see :func:`random_design_matrix`)."""
        n = len(self)
        rows, cols, vals = [], [], []
        for off, codes, z in zip(term_offsets, self.codes, self.values):
            q = z.shape[1]
            for c in range(q):
                rows.append(np.arange(n))
                cols.append(off + codes * q + c)
                vals.append(z[:, c])
        if not rows:
            return sp.csr_matrix((n, n_columns))
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, n_columns))


def _codes_on(train: Sequence[str], v: Value) -> tuple[np.ndarray, np.ndarray]:
    """Each row's index among the level strings ``train`` (-1 missing, -2 a level not there), and
    the level strings of the distinct values (indexed like the codes' sources), matched as R
    matches levels: by their spelling. Work is per distinct value, not per row."""
    index = {s: i for i, s in enumerate(train)}
    if v.kind == "numeric":  # numbers given for a factor
        x = np.ravel(v.values)
        uniq, inverse = np.unique(x, return_inverse=True)  # NaN sorts last and stays apart
        level_strings = np.array([None if np.isnan(u) else r_label(float(u)) for u in uniq], dtype=object)
        row_pos = inverse.ravel()
    else:
        f = v.as_factor()
        level_strings = np.array(list(f.levels) + [None], dtype=object)
        row_pos = np.where(f.values < 0, len(f.levels), f.values)
    lut = np.array([-1 if s is None else index.get(s, -2) for s in level_strings], dtype=np.intp)
    return lut[row_pos], level_strings[row_pos] if (lut == -2).any() else level_strings[:0]


def _no_missing(values: dict[str, Value], where: str) -> None:
    bad = [k for k, v in values.items() if v.na.any()]
    if bad:
        raise DataError(f"newdata has missing values in column(s) {bad} (in {where})")


def _numeric_vector(v: Value, what: str) -> np.ndarray:
    if v.kind not in ("numeric", "logical"):
        raise DataError(f"{what} must be numeric, but it is a {v.kind}")
    x = v.values.astype(float)
    if x.ndim == 2:
        if x.shape[1] != 1:
            raise DataError(f"{what} must be one column, but it has {x.shape[1]}")
        x = x[:, 0]
    return x


# ---------------------------------------------------------------------------------------- grouping
def _group_value(term: RandomTerm, data: pd.DataFrame, learn: bool = False) -> Value:
    """The grouping factor of a term: a factor, or lme4's interaction ``a:b`` of several."""
    parts = group_parts(term, data, learn)
    return parts[0] if len(parts) == 1 else combine_factors(parts, sep=":")


def group_parts(term: RandomTerm, data: pd.DataFrame, learn: bool = False) -> list[Value]:
    """The factors a term's grouping factor is made of (lme4's ``a:b`` has two), each as a factor.

    A column is read exactly (:func:`hiermio.formula.variables.column_factor`: integer ids of any size stay
    exact, floating-point ids are levels by R's 15-digit spelling, text ids are levels whatever they
    look like); an expression is evaluated and made a factor as R's ``factor()`` makes one. When
    learning (the training data), numbers spelled alike are said to be one level.

    >>> from hiermio.formula.terms import parse_formula
    >>> t = parse_formula("y ~ 1 + (1 | a:b)").random[0]
    >>> [p.levels for p in group_parts(t, pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))]
    [['1', '2'], ['x', 'y']]
    """
    parts = []
    for node in term.group_factors:
        column = node.inner if isinstance(node, Paren) else node
        if isinstance(column, Name) and column.id in data.columns:
            f = column_factor(data, column.id)
            if learn and pd.api.types.is_float_dtype(data[column.id].dtype):
                _warn_merged_spellings(data[column.id], f, term)
            parts.append(f)
            continue
        try:
            v = evaluate(node, data, {}, learn=True)
        except FormulaError as exc:
            raise FormulaError(f"{exc} (in the grouping factor of random term {term.label})") from exc
        if v.kind == "numeric":
            if v.values.ndim == 2:
                raise DataError(f"grouping factor {deparse(node)!r} of random term {term.label} is a matrix")
            v = factor_of_numbers(v.values)
        parts.append(v.as_factor())
    return parts


def _warn_merged_spellings(col: pd.Series, f: Value, term: RandomTerm) -> None:
    """Say so when distinct numbers of a grouping column are one level because R spells them alike
    (15 significant digits): 0.1 + 0.2 and 0.3 are meant to be; ids above 2**53 stored as floats are not."""
    distinct = pd.unique(col.dropna().to_numpy())
    if len(distinct) == len(f.levels):
        return
    codes = f.values[~col.isna().to_numpy()]
    values = col.dropna().to_numpy()
    first = np.flatnonzero(np.bincount(codes, minlength=len(f.levels)) > 0)
    for level in first:
        same = pd.unique(values[codes == level])
        if len(same) > 1:
            example = ", ".join(repr(float(v)) for v in same[:2])
            break
    warnings.warn(f"grouping factor {col.name!r} of random term {term.label}: {len(distinct)} distinct numbers make "
                  f"{len(f.levels)} levels, since R spells them alike with 15 significant digits (e.g. {example} are "
                  f"the level {f.levels[level]!r}), as R's factor() does; ids above 2**53 are not exact as floats: store "
                  "them as integers (e.g. dtype 'Int64') or text", HierMIOWarning, stacklevel=5)


def group_strings(term: RandomTerm, data: pd.DataFrame) -> np.ndarray:
    """Every row's level of the term's grouping factor, spelled as R spells it (None if missing)."""
    v = _group_value(term, data)
    lv = np.array(list(v.levels) + [None], dtype=object)
    return lv[np.where(v.values < 0, len(v.levels), v.values)]


def group_labels(data: pd.DataFrame, group: str) -> pd.Series:
    """Level of every row for a grouping factor ``g`` or an interaction ``a:b``.

    A single column's own values are returned (floating-point ones as the design's labels: numbers
    spelled alike with 15 significant digits are one level); an interaction is spelled as lme4 spells it.

    >>> group_labels(pd.DataFrame({"a": [1, 1], "b": ["x", "y"]}), "a:b").tolist()
    ['1:x', '1:y']
    >>> group_labels(pd.DataFrame({"g": [0.1 + 0.2, 0.3]}), "g").tolist()
    [0.3, 0.3]
    """
    node = parse(group)
    if isinstance(node, Name):
        if node.id not in data.columns:
            raise FormulaError(f"unknown grouping column {node.id!r}")
        col = data[node.id]
        if pd.api.types.is_float_dtype(col.dtype):
            f = factor_of_numbers(col.to_numpy(dtype=float, na_value=np.nan))
            labels = np.array(list(f.labels) + [np.nan], dtype=object)
            return pd.Series(labels[np.where(f.values < 0, len(f.labels), f.values)], index=data.index, name=col.name)
        return col
    term = RandomTerm("1", group, parse("1"), node)
    return pd.Series(group_strings(term, data), index=data.index, name=group)


# ---------------------------------------------------------------------------------------- checks
# Squares and cross products of values beyond these overflow or underflow double precision; a
# column whose largest magnitude lies outside is refused rather than turned into NaN or a wrong support.
_MAGNITUDE_LIMIT = 1e150
_MAGNITUDE_FLOOR = 1e-152


def _check_magnitude(big: float, name: str) -> None:
    """Refuse a column whose largest magnitude ``big`` has a square that overflows or underflows."""
    if big > _MAGNITUDE_LIMIT or 0 < big < _MAGNITUDE_FLOOR:
        large = big > _MAGNITUDE_LIMIT
        raise DataError(f"{name} has values {'as large as' if large else 'no larger than'} {big:.3g} in magnitude: "
                        f"their squares {'overflow' if large else 'underflow'} double precision (the values must "
                        f"lie within {_MAGNITUDE_FLOOR:.0e}..{_MAGNITUDE_LIMIT:.0e}); rescale it, e.g. "
                        f"{'divide' if large else 'multiply'} by a power of ten")


def _finite(a: np.ndarray, what: str, names: Sequence[str] | None = None) -> np.ndarray:
    """``a`` if every value is finite and of a magnitude whose squares double precision holds."""
    cols = a.reshape(len(a), -1)
    for j in range(cols.shape[1]):  # column by column: no temporary the size of ``a``
        big = float(np.max(np.abs(cols[:, j]))) if len(cols) else 0.0
        if not np.isfinite(big):
            bad = int((~np.isfinite(a)).any(axis=1).sum()) if a.ndim == 2 else int((~np.isfinite(a)).sum())
            raise DataError(f"the {what} evaluates to NaN or infinity in {bad} row(s) (e.g. log of a non-positive "
                            "value)")
        _check_magnitude(big, f"column {names[j]!r} of the {what}" if names is not None else f"the {what}")
    return a


def _block_slices(n: int, rows: int = _BLOCK_ROWS) -> list[slice]:
    return [slice(start, min(start + rows, n)) for start in range(0, n, rows)]


def _layout_rows(layout: ColumnLayout, values: dict[str, Value], sl: slice) -> np.ndarray:
    """Rows ``sl`` of the matrix ``layout`` makes from ``values`` (evaluated on every row)."""
    return layout.matrix({k: v.take(sl) for k, v in values.items()}, sl.stop - sl.start)


def _scan_fixed(layout: ColumnLayout, values: dict[str, Value], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed part evaluated block by block, so that no n x p matrix is held: every value is
    checked (finite, of a usable magnitude), and returned are the R factor of the columns with all
    but the intercept centred (R'R = X_c'X_c: R's rank test runs on it) and every block's column sums
    and absolute sums, shape (blocks, 2, p).

    Collinearity is a property of the centred columns: x + 1e8 (a timestamp) is as far from the
    intercept as x is, though its raw norm is almost all intercept. (R tests the raw norms and drops
    such a column; the model is the same either way, so the centred test loses nothing.)

    >>> from hiermio.formula.terms import parse_formula
    >>> vals = {"x": Value("numeric", np.array([1e8, 1e8 + 2]))}
    >>> layout = ColumnLayout.build(parse_formula("y ~ x + (1 | g)").fixed_terms, vals)
    >>> R, sums = _scan_fixed(layout, vals, 2)
    >>> np.abs(R).round(6).tolist(), sums[0, 0].tolist()
    ([[1.414214, 0.0], [0.0, 1.414214]], [2.0, 200000002.0])
    """
    slices = _block_slices(n)
    P = layout.n_columns
    sums, big, bad = np.zeros((len(slices), 2, P)), np.zeros(P), 0
    const = np.ones(P, dtype=bool)
    first = None
    for b, sl in enumerate(slices):
        Xb = _layout_rows(layout, values, sl)
        bad += int((~np.isfinite(Xb)).any(axis=1).sum())
        absb = np.abs(Xb)
        big = np.fmax(big, absb.max(axis=0)) if len(Xb) else big
        sums[b] = Xb.sum(axis=0), absb.sum(axis=0)
        first = Xb[0].copy() if first is None else first
        const &= np.all(Xb == first, axis=0)
    if bad:
        raise DataError(f"the fixed part evaluates to NaN or infinity in {bad} row(s) (e.g. log of a non-positive value)")
    for j in range(P):
        _check_magnitude(float(big[j]), f"column {layout.names[j]!r} of the fixed part")
    const &= first != 0  # one nonzero value on every row: an intercept, whatever its name
    shift = sums[:, 0].sum(axis=0) / n if const.any() else np.zeros(P)
    shift[const] = 0.0
    R = np.zeros((0, P))
    for sl in slices:
        R = np.linalg.qr(np.vstack([R, _layout_rows(layout, values, sl) - shift]), mode="r")
    return R, sums


def required_columns(parsed: ParsedFormula, response: bool = True) -> dict[str, set[str]]:
    """The data columns each part of the formula uses, keyed by a description of the part.

    >>> {part: sorted(cols) for part, cols in required_columns(parse_formula("y ~ log(x) + (1 + z | g)")).items()}
    {"the response 'y'": ['y'], "the fixed part 'log(x)'": ['x'], 'random term (1 + z | g)': ['g', 'z']}
    """
    needed = {f"the response {parsed.response!r}": set(referenced_columns(parsed.response_node))} if response else {}
    fixed = set()
    if parsed.fixed_node is not None:
        fixed = set(referenced_columns(parsed.fixed_node))
    needed[f"the fixed part {parsed.fixed!r}"] = fixed
    for t in parsed.random:
        needed[f"random term {t.label}"] = set(referenced_columns(t.lhs)) | set(t.group_columns)
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


def _evaluate(node: Node, data: pd.DataFrame, state: dict, where: str, learn: bool = True,
              collect: dict | None = None) -> Value:
    try:
        return evaluate(node, data, state, learn=learn, collect=collect)
    except FormulaError as exc:
        raise FormulaError(f"{exc} (in {where})") from exc


def _check_computed(values: dict[str, Value], data: pd.DataFrame, where_of: dict[str, str]) -> None:
    """A transform that makes NaN from complete inputs (log of 0, sqrt of -1) is an error, not a
    silently dropped row (R drops such rows with only a warning). A variable that names R's NA
    (``ifelse(x > 0, x, NA)``) makes missing values on purpose: its rows are dropped, as R drops them."""
    for key, v in values.items():
        if key in data.columns or v.kind not in ("numeric", "logical"):
            continue
        if any(isinstance(n, Name) and n.id in NA_CONSTANTS and n.id not in data.columns for n in walk(parse(key))):
            continue
        inputs_na = np.zeros(len(data), dtype=bool)
        for col in referenced_columns(parse(key)):
            if col in data.columns:
                inputs_na |= data[col].isna().to_numpy()
        x = v.values.reshape(len(data), -1) if v.values.ndim else np.full((len(data), 1), float(v.values))
        bad = ~np.isfinite(x).all(axis=1) & ~inputs_na
        if bad.any():
            raise DataError(f"the {_part(where_of[key])} evaluates to NaN or infinity in {int(bad.sum())} row(s): "
                            f"{key!r} (e.g. log of a non-positive value)")


def _part(where: str) -> str:
    return "fixed part" if where.startswith("the fixed part") else where.removeprefix("the ")


def values_by_row(arg: Any, data: pd.DataFrame, name: str) -> np.ndarray:
    """One value per row of ``data`` from ``arg``: a numpy array or a list is taken by position; a
    pandas Series by its index, one rule for ``weights``, ``offset`` and the estimator's ``y``.

    A Series whose index is the data's is taken as it is; one whose index holds the same labels in
    another order is aligned to the data's rows; any other index (other labels, or the same labels
    while the data's index repeats one) is refused, naming the argument: its values cannot be
    matched to the rows, and taking them by position would silently pair them with other rows.

    >>> df = pd.DataFrame({"y": [1., 2, 3]}, index=["a", "b", "c"])
    >>> values_by_row(pd.Series([30., 10., 20.], index=["c", "a", "b"]), df, "weights").tolist()
    [10.0, 20.0, 30.0]
    >>> values_by_row(pd.Series([1., 2, 3]), df, "weights")
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.DataError: weights is a pandas Series whose index does not match the data's: ...
    """
    if isinstance(arg, pd.DataFrame):
        raise DataError(f"{name} must be a column name or one number per row, got a DataFrame with "
                        f"{arg.shape[1]} columns")
    if isinstance(arg, pd.Series) and len(arg) == len(data) and not arg.index.equals(data.index):
        index = data.index
        if not (index.is_unique and arg.index.is_unique and arg.index.isin(index).all()):
            why = ("the data's index repeats labels, so only a Series with exactly the data's index can be matched"
                   if not index.is_unique else "its labels are not those of the data's rows; give it the data's "
                   "index (in any order)")
            raise DataError(f"{name} is a pandas Series whose index does not match the data's: {why}; or pass "
                            f"{name}.to_numpy() to use its values by position")
        arg = arg.reindex(index)
    values = np.asarray(arg)
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise DataError(f"{name} must be a column name or one number per row, got {type(arg).__name__} "
                        f"of dtype {values.dtype} and shape {values.shape}")
    if len(values) != len(data):
        raise DataError(f"{name} has {len(values)} values but the data has {len(data)} rows")
    return values.astype(float)


def vector_args_as_columns(data: pd.DataFrame, **args: Any) -> tuple[Any, ...]:
    """``weights=`` / ``offset=`` given as one number per row become columns ``(weights)`` /
    ``(offset)`` (lme4's names in its model frame), so that subsets of rows (folds, half-samples,
    resamples) carry them along; column names pass through. A pandas Series is matched to the
    rows by its index (:func:`values_by_row`).

    >>> d, w = vector_args_as_columns(pd.DataFrame({"y": [1., 2]}), weights=[1., 3.])
    >>> w, d["(weights)"].tolist()
    ('(weights)', [1.0, 3.0])
    """
    out = []
    for name, arg in args.items():
        if arg is None or isinstance(arg, str):
            out.append(arg)
            continue
        column = f"({name})"
        data = data.assign(**{column: values_by_row(arg, data, name)})
        out.append(column)
    return (data, *out)


def carry_vector_options(data: pd.DataFrame, options: dict) -> pd.DataFrame:
    """``weights`` / ``offset`` in ``options`` as columns of ``data`` (see
    :func:`vector_args_as_columns`), the options then naming them; for callers that split rows.

    >>> opts = {"weights": [1., 2.], "ridge": 0.1}
    >>> carry_vector_options(pd.DataFrame({"y": [1., 2]}), opts).columns.tolist(), opts
    (['y', '(weights)'], {'ridge': 0.1, 'weights': '(weights)'})
    """
    data, w, off = vector_args_as_columns(data, weights=options.pop("weights", None),
                                          offset=options.pop("offset", None))
    options.update({k: v for k, v in (("weights", w), ("offset", off)) if v is not None})
    return data


def _vector_argument(column: str | None, data: pd.DataFrame, name: str, state: dict) -> np.ndarray | None:
    """``weights=`` / ``offset=`` as a numeric vector (arrays are columns by now, see
    :func:`vector_args_as_columns`)."""
    if column is None:
        return None
    if column not in data.columns:
        close = difflib.get_close_matches(column, [str(c) for c in data.columns], n=1)
        raise DataError(f"{name}={column!r} is not a column of the data" + (f" (did you mean {close[0]!r}?)" if close
                                                                             else ""))
    return _numeric_vector(evaluate(Name((0, 0), column), data, state), f"{name} column {column!r}")


@dataclass
class FrameValues:
    """Every variable of the model frame evaluated on the rows of one data frame (before missing rows go)."""

    values: dict[str, Value]
    where_of: dict[str, str]  # the part of the formula each variable belongs to, for messages
    groups: list[Value]  # each random term's grouping factor
    weights: np.ndarray | None
    offset: np.ndarray | None
    response_key: str
    offset_nodes: list[Node]
    term_terms: list[Terms]
    group_names: list[str]  # each random term's grouping factor, as written
    weights_name: str | None = None  # the weights= column, for messages

    def missing(self) -> tuple[np.ndarray, dict[str, int]]:
        """Rows with a missing value in any variable (lme4's na.omit), and the count per variable."""
        n = len(next(iter(self.values.values())).values)
        missing = np.zeros(n, dtype=bool)
        counts: dict[str, int] = {}
        for key, v in self.values.items():
            m = v.na
            missing |= m
            if m.any():
                counts[key] = int(m.sum())
        for t, g in zip(self.group_names, self.groups):
            m = g.values < 0
            if m.any():
                missing |= m
                counts.setdefault(t, int(m.sum()))
        for name, arr in (("weights", self.weights), ("offset", self.offset)):
            if arr is not None and np.isnan(arr).any():
                missing |= np.isnan(arr)
                counts[name] = int(np.isnan(arr).sum())
        return missing, counts

    def used_weights(self, keep: np.ndarray) -> np.ndarray | None:
        """The prior weights of the rows kept, checked: finite, non-negative and within the range
        :func:`check_weight_range` accepts."""
        if self.weights is None:
            return None
        w = self.weights[keep]
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError("weights must be finite and non-negative")
        check_weight_range(*weight_range(w), self.weights_name)
        return w

    def total_offset(self, keep: np.ndarray) -> np.ndarray | None:
        """The formula's offset() terms plus the offset= argument, on the rows kept (None without any)."""
        if not self.offset_nodes and self.offset is None:
            return None
        total = np.zeros(len(keep))
        for node in self.offset_nodes:
            x = _numeric_vector(self.values[deparse(node)].take(keep), deparse(node))
            total += _finite(x, f"offset {deparse(node)}")
        if self.offset is not None:
            total += _finite(self.offset[keep], "offset")
        return total


def model_frame_values(parsed: ParsedFormula, data: pd.DataFrame, state: dict, weights: str | None,
                       offset: str | None, learn: bool = True, collect: dict | None = None) -> FrameValues:
    """Evaluate every variable of the formula on ``data`` (stateful transforms learn into ``state``,
    apply it with ``learn=False``, or summarise into ``collect``), and check the response's type.

    >>> fv = model_frame_values(parse_formula("y ~ log(x) + (1 | g)"), pd.DataFrame(
    ...     {"y": [1., 2], "x": [1., None], "g": ["a", "b"]}), {}, None, None)
    >>> list(fv.values), fv.missing()[1]
    (['y', 'log(x)'], {'log(x)': 1})
    """
    fixed_terms = parsed.fixed_terms
    values: dict[str, Value] = {}
    where_of: dict[str, str] = {}

    def add(node: Node, where: str) -> None:
        key = deparse(node)
        if key not in values:
            values[key] = _evaluate(node, data, state, where, learn, collect)
            where_of[key] = where

    response_key = deparse(parsed.response_node)
    add(parsed.response_node, f"the response {parsed.response!r}")
    for node in fixed_terms.variables:
        add(node, f"the fixed part {parsed.fixed!r}")
    offset_nodes = list(fixed_terms.offsets)
    for node in offset_nodes:
        add(node, "offset()")
    term_terms: list[Terms] = []
    for t in parsed.random:
        tt = t.terms
        if tt.offsets:
            raise FormulaError(f"offset() cannot be part of random term {t.label}; put it in the fixed part")
        term_terms.append(tt)
        for node in tt.variables:
            add(node, f"random term {t.label}")
    groups = [_group_value(t, data, learn) for t in parsed.random]
    w = _vector_argument(weights, data, "weights", state)
    off_arg = _vector_argument(offset, data, "offset", state)
    response = values[response_key]
    if response.kind not in ("numeric", "logical") or response.values.ndim != 1:
        what = "a factor" if response.kind == "factor" else "text" if response.kind == "character" else "a matrix"
        dtype = f" (dtype {data[parsed.response].dtype})" if parsed.response in data.columns else ""
        raise DataError(f"response {parsed.response!r} must be numeric, but it is {what}{dtype}")
    return FrameValues(values, where_of, groups, w, off_arg, response_key, offset_nodes, term_terms,
                       [t.group for t in parsed.random], weights)


def weight_range(w: np.ndarray | None) -> tuple[float, float]:
    """The smallest positive and the largest prior weight ((inf, 0) when none is positive; (1, 1)
    without weights): what :func:`check_weight_range` reads, and what partitions merge by min and max.

    >>> weight_range(np.array([0.0, 2.0, 0.5])), weight_range(None)
    ((0.5, 2.0), (1.0, 1.0))
    """
    if w is None:
        return 1.0, 1.0
    positive = w[w > 0]
    return (float(positive.min()), float(positive.max())) if len(positive) else (float("inf"), 0.0)


def check_weight_range(low: float, high: float, column: str | None) -> None:
    """Refuse prior weights whose positive values span more than ``WEIGHT_RATIO_MAX`` (1e8), or
    whose largest value lies outside 1e-150 .. 1e150 (``WEIGHT_MAGNITUDE_MAX``).

    The sufficient statistics hold sums such as Z'Wy, where a row of weight w enters with w times
    its values: when one row weighs 1e12 times another, the light rows' share of those sums sits
    12 digits down, and what is left after the fixed part is taken off keeps about 16 - 12 digits.
    Measured against a weighted QR solve of the same support (numpy, rows scaled by sqrt(w), the
    ridge as rows sqrt(mu) I, heavy rows first) on sleepstudy (one heavy row, intercepts, slopes,
    crossed) and simulated data (one heavy row, log-uniform weights, crossed, slopes), the worst
    relative error of the objective and the coefficients was 1e-9 at a ratio of 1e8, 1e-8 at 1e9,
    7e-8 at 1e10, 5e-6 at 1e12 and 0.2 at 1e16, growing with the ratio; up to 1e8 a fit matches
    the QR solve to 1e-8. Zero weights do not count (those rows are left out).

    A factor common to all weights changes only the scale of the objective and of sigma: weights
    of 1e-305 or 1e290 throughout give the unweighted fit to 1e-15. Their sums of squares are
    reported in the user's units, though, so at 1e300 (with a response in the hundreds of
    thousands) they overflow, and at 1e-310, below the normal doubles, the fit was NaN: the
    largest weight must lie within 1e-150 .. 1e150, which leaves the response and the covariates
    some 150 orders of magnitude.

    >>> check_weight_range(0.5, 2.0, "w")
    >>> check_weight_range(1e-3, 1e16, "w")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.DataError: weights (column 'w') range from 0.001 to 1e+16 (ratio 1e+19): ...
    """
    what = "weights" if column in (None, "(weights)") else f"weights (column {column!r})"
    if high > 0 and not 1 / WEIGHT_MAGNITUDE_MAX <= high <= WEIGHT_MAGNITUDE_MAX:
        raise DataError(f"{what} range from {low:.3g} to {high:.3g}: the largest must lie between "
                        f"{1 / WEIGHT_MAGNITUDE_MAX:.0e} and {WEIGHT_MAGNITUDE_MAX:.0e}, or the weighted sums of "
                        "squares leave double precision; multiplying every weight by one number changes only the "
                        "scale of the objective and of sigma, not the estimates")
    if not high > 0 or high <= WEIGHT_RATIO_MAX * low:
        return
    raise DataError(f"{what} range from {low:.3g} to {high:.3g} (ratio {high / low:.3g}): double precision carries "
                    f"a fit to 1e-8 only for positive weights within a ratio of {WEIGHT_RATIO_MAX:.0e} of each other. "
                    "Rows that must be fitted exactly are constraints, not weights; otherwise cap or rescale the "
                    "extreme weights (or give weight 0 to rows that should not count)")


def build_design(
    formula: ParsedFormula | str,
    data: pd.DataFrame,
    na_action: Literal["drop", "raise"] = "drop",
    weights: Any = None,
    offset: Any = None,
) -> Design:
    """Validate ``data`` against ``formula`` and build lme4's model frame and matrices.

    Rows with a missing value in any variable the formula uses (or in ``weights`` / ``offset``)
    are dropped and counted (``na_action="drop"``) or refused (``"raise"``). ``weights`` are
    lme4's prior weights and ``offset`` a known term of the linear predictor, each a column name or
    one number per row (``offset()`` terms in the formula add to it).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1., None, 3, 4], "x": [1., 2, 3, 4], "g": [1, 1, 2, 2]})
    >>> build_design("y ~ x + (1 | g)", df).n_dropped
    1
    >>> build_design("y ~ I(x^2) + (1 | g)", df).fixed_names
    ('(Intercept)', 'I(x^2)')
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if not isinstance(data, pd.DataFrame):
        try:
            data = pd.DataFrame(data)
        except Exception as exc:
            raise DataError(f"data must be a pandas DataFrame (or convertible to one), got {type(data).__name__}") from exc
    if na_action not in ("drop", "raise"):
        raise DataError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
    if len(data) == 0:
        raise DataError("data has no rows")
    data, weights, offset = vector_args_as_columns(data, weights=weights, offset=offset)
    dup = data.columns[data.columns.duplicated()].unique().tolist()
    needed = required_columns(parsed)
    used_names = set().union(*needed.values())
    clash = [c for c in dup if c in used_names]
    if clash:
        raise DataError(f"the data has several columns named {clash[0]!r}; column names must be unique")
    _check_columns(needed, data)

    state: dict = {}
    fixed_terms = parsed.fixed_terms
    frame_values = model_frame_values(parsed, data, state, weights, offset)
    values, where_of, groups = frame_values.values, frame_values.where_of, frame_values.groups
    response_key, term_terms = frame_values.response_key, frame_values.term_terms
    _check_computed(values, data, where_of)
    missing, counts = frame_values.missing()
    n_dropped = int(missing.sum())
    messages = dropped_rows_messages(n_dropped, counts, len(data), na_action)
    keep = np.flatnonzero(~missing)
    if len(keep) == 0:
        raise DataError("no rows left after dropping rows with missing values")
    frame = data.iloc[keep]
    if n_dropped:  # with every row kept, the values are used as evaluated: no copies
        values = {k: v.take(keep) for k, v in values.items()}
    # factors keep only the levels present in the rows used (lme4's drop.unused.levels)
    levels: dict[str, list[str]] = {}
    numeric: set[str] = set()
    for k, v in list(values.items()):
        if v.kind == "numeric":
            numeric.add(k)
            continue
        if k == response_key:
            continue
        f = v.as_factor().drop_unused()
        values[k] = f
        levels[k] = list(f.levels)
    groups = [(g.take(keep) if n_dropped else g).drop_unused() for g in groups]

    y = _finite(_numeric_vector(values[response_key], f"response {parsed.response!r}"),
                f"response {parsed.response!r}")
    w_used = frame_values.used_weights(keep)
    if w_used is not None and not np.any(w_used > 0):
        raise DataError("weights are all zero")
    total_offset = frame_values.total_offset(keep)

    layout = ColumnLayout.build(fixed_terms, values)
    fixed_values = {k: values[k] for k in layout.keys}  # kept: X's blocks are made from them
    R, sums = _scan_fixed(layout, fixed_values, len(keep))
    dropped = aliased_columns(R)
    keep_cols = np.array([j for j in range(layout.n_columns) if j not in dropped], dtype=int)
    dropped_names = tuple(layout.names[j] for j in dropped)
    messages += rank_messages(dropped_names)
    for msg in messages:
        warnings.warn(msg, HierMIOWarning, stacklevel=2)
    check_rows_enough(len(keep_cols), len(y))

    terms = []
    for t, tt, g in zip(parsed.random, term_terms, groups):
        tl = ColumnLayout.build(tt, values)
        Zv = _finite(tl.matrix(values, len(keep)), f"random term {t.label}", tl.names)
        check_term(t, tl, list(g.levels), terms)
        terms.append(TermDesign(t, tuple(tl.names), pd.Index(g.labels), g.values.astype(np.intp), Zv, tl,
                                tuple(g.levels)))

    return Design(
        formula=parsed, y=y, fixed_names=tuple(layout.names[j] for j in keep_cols), terms=terms,
        rows=frame.index, n_dropped=n_dropped, data=frame, weights=w_used, offset=total_offset,
        dropped_columns=dropped_names, messages=messages, _state=state, _levels=levels, _numeric=numeric,
        _fixed_layout=layout, _fixed_keep=keep_cols, weights_column=weights, offset_column=offset,
        _X_sums=sums[:, :, keep_cols], _fixed_values=fixed_values,
    )


def dropped_rows_messages(n_dropped: int, counts: dict[str, int], n_total: int, na_action: str) -> list[str]:
    """lme4's na.omit, said: the rows dropped and the variables that made them missing (or the error).

    >>> dropped_rows_messages(2, {"x": 2}, 10, "drop")
    ["2 of 10 rows dropped for missing values in 'x' (2)"]
    """
    if not n_dropped:
        return []
    which = ", ".join(f"{c!r} ({v})" for c, v in sorted(counts.items()))
    if na_action == "raise":
        raise DataError(f"{n_dropped} row(s) have missing values in {which}; pass na_action='drop' to drop them")
    return [f"{n_dropped} of {n_total} rows dropped for missing values in {which}"]


def rank_messages(dropped_names: Sequence[str]) -> list[str]:
    """lme4's message for fixed columns dropped as linear combinations of earlier ones.

    >>> rank_messages(["x2"])
    ["fixed-effect model matrix is rank deficient so dropping 1 column / coefficient: 'x2'"]
    """
    if not dropped_names:
        return []
    k = len(dropped_names)
    return [f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''} / "
            f"coefficient{'s' if k > 1 else ''}: " + ", ".join(map(repr, dropped_names))]


def check_rows_enough(p: int, n: int) -> None:
    if p >= n:
        raise DataError(f"the fixed part has {p} columns but only {n} rows are used: "
                        "a model needs more rows than fixed-effect coefficients")


def check_term(t: RandomTerm, layout: ColumnLayout, levels: list[str], earlier: list[TermDesign]) -> None:
    """A random term's columns and levels, against lme4's rules and the terms before it."""
    if layout.n_columns == 0:
        raise FormulaError(f"random term {t.label} has no covariates")
    if len(levels) < 2:
        raise DataError(f"grouping factor {t.group!r} of term {t.label} has a single level ({levels[0]!r}); "
                        "a random effect needs at least two levels")
    for other in earlier:
        shared = [c for c in layout.names if other.term.group == t.group and c in other.coef_names]
        if shared:
            raise FormulaError(
                f"random terms {other.term.label} and {t.label} both give grouping factor {t.group!r} "
                f"the column {shared[0]!r}: a column may appear in one term only (twice, its effect is "
                "not identifiable and its budget would count twice)")


def random_design_matrix(design: Design) -> sp.csr_matrix:
    """Sparse n x m matrix Z of all random-effect columns (term by term, level-major).

    >>> d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1., 2, 3], "g": [0, 1, 1]}))
    >>> random_design_matrix(d).toarray().tolist()
    [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """
    design.require_rows("the random-effects matrix Z")
    block = RowBlock(np.zeros((design.n, 0)), design.y, None, [t.codes for t in design.terms], [t.values for t in design.terms],
                     design.rows)
    return block.random_matrix(design.term_offsets(), design.n_columns)
