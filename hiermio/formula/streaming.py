"""The design of data read in partitions: what :func:`hiermio.formula.design.build_design` learns from
one frame, learned from a :class:`hiermio.data.sources.DataSource` in passes that keep one partition and
one summary in memory.

1. (only when the formula has ``scale()``, ``poly()``, ``center()``, splines or a function of a
   factor's levels: ``factor()``, ``ordered()``, ``relevel()``, ``C()``, ``interaction()``) the
   stateful transforms' inputs are summarised by mergeable moments and level sets
   (:func:`hiermio.formula.variables.merge_summaries`), so that ``as.numeric(factor(f))`` codes every
   partition by the levels of all the data;
2. every variable is evaluated with those parameters: missing values are counted, factor and
   grouping levels collected from the complete rows (in R's order: a declared order when every
   partition declares the same, else sorted as R sorts), column types and widths recorded;
3. :func:`hiermio.problem.sufficient.cross_products` sums what the statistics need, after which the fixed
   columns that are linear combinations of earlier ones are dropped, with lme4's message.

The design that comes out has no rows (``Design.source`` says where they are): every later use of
the rows (fitted values, residuals, standard errors) is another pass.

>>> import pandas as pd
>>> chunks = [pd.DataFrame({"y": [1., 2, 3], "x": [0., 1, 2], "g": ["b", "b", "a"]}),
...           pd.DataFrame({"y": [4., None], "x": [1., 2], "g": ["c", "a"]})]
>>> d = learn_design("y ~ x + (1 | g)", chunks)
>>> d.n, d.n_dropped, list(d.terms[0].levels), d.fixed_names
(4, 1, ['a', 'b', 'c'], ('(Intercept)', 'x'))
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from .design import (Design, TermDesign, check_rows_enough, check_term, check_weight_range, dropped_rows_messages,
                     group_parts, model_frame_values, rank_messages, required_columns, weight_range, _check_columns,
                     _check_computed)
from ..core.exceptions import DataError, HierMIOWarning
from .terms import ParsedFormula, parse_formula
from .modelmatrix import ColumnLayout, aliased_columns
from ..data.sources import as_source
from .variables import Value, final_levels, merge_summaries, state_from_summaries

__all__ = ["learn_design", "finish_fixed_columns"]

# calls that learn from the data: transforms, and the factors whose levels (codes, first level)
# must be those of all the data (a false positive costs one pass, nothing else)
_STATEFUL = re.compile(r"(^|[^\w.])([\w.]+(::|\.))?(scale|center|poly|ns|bs|factor|ordered|relevel|C|interaction)\s*\(")


@dataclass
class _Levels:
    """A factor's levels in the complete rows of some partitions."""

    orders: set = field(default_factory=set)  # each partition's declared level order
    used: dict = field(default_factory=dict)  # level string -> original label
    ordered: bool = False
    contrasts: str | None = None

    def merge(self, other: "_Levels") -> "_Levels":
        return _Levels(self.orders | other.orders, {**self.used, **other.used}, self.ordered or other.ordered,
                       self.contrasts or other.contrasts)

    def final(self) -> tuple[list[str], list[Any]]:
        """(level strings, labels) in R's order."""
        return final_levels(self.orders, self.used)


def _levels_of(v: Value, rows: np.ndarray) -> _Levels:
    f = v.as_factor()
    codes = np.unique(f.values[rows])
    codes = codes[codes >= 0]
    return _Levels({tuple(f.levels)}, {f.levels[c]: f.labels[c] for c in codes}, f.ordered, f.contrasts)


@dataclass
class _FrameSummary:
    """What pass 2 keeps of one partition."""

    n: int
    n_missing: int
    counts: dict
    factors: dict  # key -> _Levels (non-numeric variables but the response)
    numeric: dict  # key -> (width, column names, is a matrix)
    groups: list  # per random term: (_Levels of the combined factor, component tuples) ...
    weight_range: tuple[float, float]  # smallest positive and largest prior weight (design.weight_range)

    def merge(self, other: "_FrameSummary") -> "_FrameSummary":
        counts = dict(self.counts)
        for k, v in other.counts.items():
            counts[k] = counts.get(k, 0) + v
        factors = dict(self.factors)
        for k, v in other.factors.items():
            factors[k] = factors[k].merge(v) if k in factors else v
        numeric = {**self.numeric, **other.numeric}
        kinds = set(self.factors) & set(other.numeric) | set(self.numeric) & set(other.factors)
        if kinds:
            k = sorted(kinds)[0]
            raise DataError(f"variable {k!r} is numeric in some partitions and not in others: give the column one "
                            "type in every partition (e.g. a categorical dtype)")
        groups = [a.merge(b) for a, b in zip(self.groups, other.groups)]
        return _FrameSummary(self.n + other.n, self.n_missing + other.n_missing, counts, factors, numeric, groups,
                             (min(self.weight_range[0], other.weight_range[0]),
                              max(self.weight_range[1], other.weight_range[1])))


@dataclass
class _GroupLevels:
    """A grouping factor's levels: each component factor's, and the combinations that occur."""

    parts: list  # _Levels per component factor
    combos: set  # tuples of component level strings

    def merge(self, other: "_GroupLevels") -> "_GroupLevels":
        return _GroupLevels([a.merge(b) for a, b in zip(self.parts, other.parts)], self.combos | other.combos)

    def final(self) -> tuple[list[str], list[Any]]:
        """(level strings, labels), ordered as lme4 orders an interaction: the first factor slowest."""
        if len(self.parts) == 1:
            return self.parts[0].final()
        rank = [{s: i for i, s in enumerate(p.final()[0])} for p in self.parts]
        combos = sorted(self.combos, key=lambda c: tuple(r[s] for r, s in zip(rank, c)))
        strings = [":".join(c) for c in combos]
        return strings, list(strings)


def _collect_pass(frame: pd.DataFrame, parsed: ParsedFormula, weights: str | None, offset: str | None) -> dict:
    collect: dict = {}
    model_frame_values(parsed, frame, {}, weights, offset, learn=True, collect=collect)
    return collect


def _summary_pass(frame: pd.DataFrame, parsed: ParsedFormula, state: dict, weights: str | None,
                  offset: str | None) -> _FrameSummary:
    fv = model_frame_values(parsed, frame, state, weights, offset, learn=False)
    _check_computed(fv.values, frame, fv.where_of)
    missing, counts = fv.missing()
    rows = np.flatnonzero(~missing)
    factors, numeric = {}, {}
    for key, v in fv.values.items():
        if v.kind == "numeric":
            width = v.values.shape[1] if v.values.ndim == 2 else 1
            numeric[key] = (width, tuple(v.colnames) if v.colnames else None, bool(v.matrix or v.values.ndim == 2))
        elif key != fv.response_key:
            factors[key] = _levels_of(v, rows)
    groups = []
    for t, g in zip(parsed.random, fv.groups):
        comps = [g] if len(t.group_factors) == 1 else group_parts(t, frame)  # one factor: evaluated already
        parts = [_levels_of(c, rows) for c in comps]
        if len(comps) == 1:
            combos = set()
        else:
            strings = [np.asarray(c.levels + [None], dtype=object)[np.where(c.values < 0, len(c.levels), c.values)][rows]
                       for c in comps]
            combos = set(zip(*strings))
        groups.append(_GroupLevels(parts, combos))
    w = fv.used_weights(rows)
    return _FrameSummary(len(frame), int(missing.sum()), counts, factors, numeric, groups, weight_range(w))


def learn_design(formula: ParsedFormula | str, data: Any, na_action: Literal["drop", "raise"] = "drop",
                 weights: str | None = None, offset: str | None = None, progress: bool | None = None) -> Design:
    """The design of data read in partitions (a dask DataFrame, a parquet path, chunks): passes 1
    and 2 of the module notes. The fixed columns are final after :func:`finish_fixed_columns`."""
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    source = as_source(data)
    if na_action not in ("drop", "raise"):
        raise DataError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
    needed = required_columns(parsed)
    columns = source.columns
    _check_columns(needed, pd.DataFrame(columns=columns))
    for name, arg in (("weights", weights), ("offset", offset)):  # before any pass reads the column
        if arg is not None and not isinstance(arg, str):
            raise DataError(f"{name}= for data read in partitions must name a column of the data (numbers per row "
                            "cannot follow the partitions)")
        if arg is not None and arg not in columns:
            close = difflib.get_close_matches(arg, columns, n=1)
            raise DataError(f"{name}={arg!r} is not a column of the data" + (f" (did you mean {close[0]!r}?)"
                                                                                 if close else ""))
    used = sorted(set().union(*needed.values()) | {c for c in (weights, offset) if c is not None})
    state: dict = {}
    if _STATEFUL.search(parsed.text):  # pass 1: the stateful transforms' parameters
        summaries = source.map_reduce(partial(_collect_pass, parsed=parsed, weights=weights, offset=offset),
                                      lambda a, b: merge_summaries([a, b]), used, desc="transforms", progress=progress)
        state = state_from_summaries(summaries)
    summary = source.map_reduce(partial(_summary_pass, parsed=parsed, state=state, weights=weights, offset=offset),
                                _FrameSummary.merge, used, desc="levels and missing values", progress=progress)
    n_kept = summary.n - summary.n_missing
    messages = dropped_rows_messages(summary.n_missing, summary.counts, summary.n, na_action)
    if n_kept == 0:
        raise DataError("no rows left after dropping rows with missing values")
    if not summary.weight_range[1] > 0:
        raise DataError("weights are all zero")
    check_weight_range(*summary.weight_range, weights)  # over all partitions: each may be within range alone
    # stand-ins for the values: the layout needs only each variable's kind, levels and width
    values: dict[str, Value] = {}
    levels: dict[str, list[str]] = {}
    for key, (width, names, matrix) in summary.numeric.items():
        shape = (0, width) if matrix else (0,)
        values[key] = Value("numeric", np.zeros(shape), colnames=list(names) if names else None, matrix=matrix)
    for key, lev in summary.factors.items():
        strings, labels = lev.final()
        values[key] = Value("factor", np.zeros(0, np.intp), strings, labels, ordered=lev.ordered,
                            contrasts=lev.contrasts)
        levels[key] = strings
    layout = ColumnLayout.build(parsed.fixed_terms, values)
    terms: list[TermDesign] = []
    for t, g in zip(parsed.random, summary.groups):
        tl = ColumnLayout.build(t.terms, values)
        strings, labels = g.final()
        check_term(t, tl, strings, terms)
        terms.append(TermDesign(t, tuple(tl.names), pd.Index(labels), None, None, tl, tuple(strings)))
    for msg in messages:
        warnings.warn(msg, HierMIOWarning, stacklevel=2)
    return Design(formula=parsed, y=None, fixed_names=tuple(layout.names), terms=terms, rows=None,
                  n_dropped=summary.n_missing, data=None, weights=None, offset=None, messages=messages, _state=state,
                  _levels=levels, _numeric=set(summary.numeric), _fixed_layout=layout,
                  _fixed_keep=np.arange(layout.n_columns), weights_column=weights, offset_column=offset,
                  source=source, n_rows=n_kept)


def finish_fixed_columns(design: Design, cp) -> tuple[Design, Any]:
    """Pass 3's sums decide which fixed columns are linear combinations of earlier ones (R's
    rank test on the centred columns; the R factor has the same column norms and dependencies):
    they are dropped, with lme4's message, and the rows per level recorded. In memory nothing changes.

    >>> import warnings
    >>> from hiermio.problem.sufficient import cross_products
    >>> chunks = [pd.DataFrame({"y": [1., 2, 4], "x": [0., 1, 2], "g": list("aab")}).assign(x2=lambda d: 2 * d.x)]
    >>> d = learn_design("y ~ x + x2 + (1 | g)", chunks)
    >>> with warnings.catch_warnings(record=True):
    ...     d, cp = finish_fixed_columns(d, cross_products(d))
    >>> d.fixed_names, d.dropped_columns, d.terms[0].sizes.tolist()
    (('(Intercept)', 'x'), ('x2',), [2, 1])
    """
    if design.in_memory:
        return design, cp
    R = cp.R[:, : cp.P]
    dropped = aliased_columns(R)
    keep = np.array([j for j in range(cp.P) if j not in dropped], dtype=int)
    names = tuple(design.fixed_names[j] for j in keep)
    dropped_names = tuple(design.fixed_names[j] for j in dropped)
    msgs = rank_messages(dropped_names)
    for msg in msgs:
        warnings.warn(msg, HierMIOWarning, stacklevel=2)
    check_rows_enough(len(keep), design.n)
    for t, sizes in zip(design.terms, cp.sizes):
        t.sizes = sizes
    # composable: a design already finished (a fold's, restricted from the whole data's) drops more
    design.fixed_names, design._fixed_keep = names, design._fixed_keep[keep]
    design.dropped_columns = (*design.dropped_columns, *dropped_names)
    design.messages = [*design.messages, *msgs]
    return design, cp.fixed_columns(keep)

