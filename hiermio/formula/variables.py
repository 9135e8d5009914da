"""Evaluate the variables of an R formula on a data frame, with R's meaning.

A variable is a column (``Days``, ``total.fruits``) or an R call on columns (``I(Days^2)``,
``factor(x)``, ``log(y + 1)``, ``poly(Days, 2)``, ``scale(x)``, ``ns(x, 3)``). Its value is a
:class:`Value`: numeric (a vector or a matrix with column names), logical, character or factor.
Stateful transforms (``scale``, ``poly``, ``ns``, ``bs``, ``center``) learn their parameters on the
training data and store them in a ``state`` dict keyed by the call as R spells it; evaluating with
``learn=False`` applies the stored parameters to new data, as R's ``predict()`` does with
``makepredictcall``. Functions that make a factor (``factor``, ``ordered``, ``relevel``, ``C``,
``interaction``) keep its levels there too, so that what depends on them (``as.numeric(factor(f))``,
the first level) is the same on new data and on data read in parts as on all the training rows.
The Python spellings ``np.log(x)``, ``C(x)``, ``I(x**2)``, ``center(x)`` and ``Q("name")`` mean
what they meant with formulaic.

>>> import pandas as pd
>>> df = pd.DataFrame({"Days": [0, 1, 2, 3], "g": ["b", "a", "b", "a"]})
>>> state = {}
>>> evaluate(parse("I(Days^2)"), df, state).values.tolist()
[0.0, 1.0, 4.0, 9.0]
>>> v = evaluate(parse("scale(Days)"), df, state)
>>> round(float(v.values[0, 0]), 4), evaluate(parse("scale(Days)"), df.head(1), state, learn=False).values.tolist()
(-1.1619, [[-1.161895003862225]])
>>> f = evaluate(parse("factor(g)"), df, state)
>>> f.kind, f.levels
('factor', ['a', 'b'])
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..core.exceptions import DataError, FormulaError
from .rsyntax import Call, Name, Node, Num, Op, Paren, Str, Unary, deparse, format_number, parse

__all__ = ["Value", "evaluate", "merge_summaries", "state_from_summaries", "column_value", "column_factor",
           "factor_of_numbers", "final_levels", "NA_CONSTANTS", "r_label", "r_sort_key", "referenced_columns",
           "FUNCTIONS", "parse"]


@dataclass
class Value:
    """One evaluated variable.

    ``kind`` is ``numeric`` (``values`` float, (n,) or (n, k) when ``matrix``), ``logical`` (float
    0/1 with NaN for NA), ``character`` (object array, None for NA) or ``factor`` (``values`` are
    integer codes into ``levels``, -1 for NA; ``labels`` keeps each level's original value).
    """

    kind: str
    values: np.ndarray
    levels: list[str] | None = None
    labels: list[Any] | None = None
    ordered: bool = False
    contrasts: str | None = None
    colnames: list[str] | None = None
    matrix: bool = False

    @property
    def na(self) -> np.ndarray:
        v = self.values
        if self.kind == "factor":
            return v < 0
        if self.kind == "character":
            return pd.isna(v)
        return np.isnan(v).any(axis=1) if v.ndim == 2 else np.isnan(v)

    def take(self, rows: np.ndarray) -> "Value":
        return replace(self, values=self.values[rows])

    def as_factor(self) -> "Value":
        """Logical and character values as factors (R's model.matrix does the same)."""
        if self.kind == "factor":
            return self
        if self.kind == "logical":
            codes = np.where(np.isnan(self.values), -1, self.values).astype(np.intp)
            return Value("factor", codes, ["FALSE", "TRUE"], [False, True])
        if self.kind == "character":
            return _factor_from(self.values)
        raise TypeError("numeric values are not a factor")

    def drop_unused(self) -> "Value":
        if self.kind != "factor":
            return self
        used = np.unique(self.values[self.values >= 0])
        if len(used) == len(self.levels):
            return self
        remap = np.full(len(self.levels), -1, dtype=np.intp)
        remap[used] = np.arange(len(used))
        codes = np.where(self.values >= 0, remap[np.maximum(self.values, 0)], -1)
        return replace(self, values=codes, levels=[self.levels[i] for i in used],
                       labels=[self.labels[i] for i in used])


# ---------------------------------------------------------------------------------------- labels
def r_label(v: Any) -> str:
    """A value as R's ``as.character`` spells it as a factor level.

    >>> r_label(308), r_label(1.0), r_label(1e5), r_label(True), r_label("a")
    ('308', '1', '1e+05', 'TRUE', 'a')
    """
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return format_number(float(v))
    return str(v)


def r_sort_key(s: str):
    """An approximation of R's ICU collation of levels: case-insensitive first, lower case first
    on ties, punctuation before digits before letters.

    >>> sorted(["b", "B", "a", "A", "_x", "10", "9"], key=r_sort_key)
    ['_x', '10', '9', 'a', 'A', 'b', 'B']
    """
    def cls(ch: str) -> int:
        return 2 if ch.isalpha() else 1 if ch.isdigit() else 0

    return tuple((cls(c), c.casefold()) for c in s), tuple(c.isupper() for c in s)


def _are_numbers(values) -> bool:
    """True when every value is a number (booleans are not): R sorts such levels by value."""
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
               for v in values)


def _factor_from(values: np.ndarray, levels: list[Any] | None = None) -> Value:
    """A factor from raw values: levels sorted as R sorts them (numbers by value, text by collation).

    As R's ``factor()``, the levels are the values' spellings (``as.character``: 15 significant
    digits), so two numbers spelled alike are one level, the first in order keeping its label:

    >>> f = _factor_from(np.array([0.1 + 0.2, 0.3, 0.5], dtype=object))
    >>> f.levels, f.values.tolist()
    (['0.3', '0.5'], [0, 0, 1])
    """
    values = np.asarray(values, dtype=object)
    inverse, uniques = pd.factorize(values)  # missing values get -1
    present = list(uniques)
    if levels is None:
        if _are_numbers(present):
            levels = sorted(present)  # Python ints compare exactly, whatever their size
        else:
            levels = sorted(present, key=lambda v: r_sort_key(r_label(v)))
    spelled = {}
    for v in levels:  # one level per spelling (R matches values to levels by as.character)
        spelled.setdefault(r_label(v), v)
    strings, levels = list(spelled), list(spelled.values())
    index = {s: i for i, s in enumerate(strings)}
    code_of_unique = np.array([index.get(r_label(v), -1) for v in present] + [-1], dtype=np.intp)
    codes = code_of_unique[np.where(inverse >= 0, inverse, len(present))]
    return Value("factor", codes, strings, list(levels))


# ---------------------------------------------------------------------------------------- columns
def column_value(data: pd.DataFrame, name: str) -> Value:
    """A data column as an R value: numbers numeric, bools logical, categoricals factors, text character."""
    col = data[name]
    if isinstance(col, pd.DataFrame):
        raise DataError(f"the data has {col.shape[1]} columns named {name!r}; column names must be unique")
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = list(dtype.categories)
        return Value("factor", col.cat.codes.to_numpy().astype(np.intp), [r_label(c) for c in cats], cats,
                     ordered=bool(dtype.ordered))
    if pd.api.types.is_bool_dtype(dtype):
        return Value("logical", col.astype("float64").to_numpy())
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"column {name!r} is complex; a model needs real numbers")
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataError(f"column {name!r} holds dates or durations ({dtype}); convert it to a number first, "
                        f"e.g. days since a reference date")
    if pd.api.types.is_numeric_dtype(dtype):
        return Value("numeric", col.to_numpy(dtype=float, na_value=np.nan))
    values = col.to_numpy(dtype=object)
    mask = pd.isna(values)
    if pd.api.types.infer_dtype(values, skipna=True) == "string":  # all text: checked per distinct value
        counts = pd.Series(values[~mask]).value_counts(sort=False)
        numeric = np.array([_is_number(t) for t in counts.index], dtype=bool)
        n_numeric = int(counts.to_numpy()[numeric].sum())
        if n_numeric and n_numeric >= max(1, int(counts.sum()) // 2) and not numeric.all():
            odd = counts.index[~numeric][0]
            raise DataError(f"column {name!r} is mostly numbers but holds text such as {odd!r}; convert it with "
                            f"pd.to_numeric(data[{name!r}], errors='coerce') to treat such cells as missing, or make "
                            "it a categorical on purpose")
        out = values.copy()
        out[mask] = None
        return Value("character", out)
    present = values[~mask]
    if any(isinstance(v, bool) for v in present) and all(isinstance(v, bool) for v in present):
        return Value("logical", np.where(mask, np.nan, values.astype(float, copy=False) if not mask.any() else
                                         np.array([np.nan if m else float(v) for v, m in zip(values, mask)])))
    numbers = [v for v in present if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
    texts = [v for v in present if isinstance(v, str)]
    numeric_text = [t for t in texts if _is_number(t)]
    if (numbers or numeric_text) and len(numbers) + len(numeric_text) >= max(1, len(present) // 2) \
            and len(numbers) + len(numeric_text) < len(present):
        odd = next(v for v in present if not (isinstance(v, (int, float, np.number)) or
                                               (isinstance(v, str) and _is_number(v))))
        raise DataError(f"column {name!r} is mostly numbers but holds text such as {odd!r}; convert it with "
                        f"pd.to_numeric(data[{name!r}], errors='coerce') to treat such cells as missing, or make it "
                        "a categorical on purpose")
    if any(isinstance(v, (pd.Timestamp, np.datetime64)) for v in present):
        raise DataError(f"column {name!r} holds dates; convert it to a number first")
    return Value("character", np.where(mask, None, values.astype(str) if not numbers else
                                       np.array([r_label(v) for v in values], dtype=object)).astype(object))


def column_factor(data: pd.DataFrame, name: str) -> Value:
    """A data column read as a factor, exactly (a grouping factor is a factor, whatever its spelling).

    Integers of any width (int64, uint64, nullable, Python ints in an object column) keep their
    exact values; floating-point numbers are levels by their spelling with R's 15 significant
    digits (as R's ``factor()``: ``0.1 + 0.2`` and ``0.3`` are the one level ``"0.3"``); text is
    read as it is, with no "mostly numbers" check (``"A7"`` among ``"1"``..``"9"`` is a level).

    >>> ids = pd.DataFrame({"g": np.array([2**60 + 1, 2**60 + 2, 5], dtype=np.int64)})
    >>> column_factor(ids, "g").levels
    ['5', '1152921504606846977', '1152921504606846978']
    >>> column_factor(pd.DataFrame({"g": [0.1 + 0.2, 0.3]}), "g").levels
    ['0.3']
    """
    col = data[name]
    if isinstance(col, pd.DataFrame):
        raise DataError(f"the data has {col.shape[1]} columns named {name!r}; column names must be unique")
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return column_value(data, name).as_factor()
    if pd.api.types.is_integer_dtype(dtype):
        codes, uniques = pd.factorize(col, sort=True)  # exact integers; missing values get -1
        labels = [int(u) for u in uniques]
        return Value("factor", np.asarray(codes, dtype=np.intp), [str(u) for u in labels], labels)
    if pd.api.types.is_float_dtype(dtype):
        return factor_of_numbers(col.to_numpy(dtype=float, na_value=np.nan))
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype) or \
            pd.api.types.is_timedelta64_dtype(dtype):
        return column_value(data, name).as_factor()  # complex, dates: column_value's errors
    values = col.to_numpy(dtype=object)
    if any(isinstance(v, (pd.Timestamp, np.datetime64)) for v in values[:1000]):
        raise DataError(f"column {name!r} holds dates; convert it to a number or text first")
    return _factor_from(np.where(pd.isna(values), None, values))


def factor_of_numbers(x: np.ndarray) -> Value:
    """Floating-point numbers as a factor, as R's ``factor()`` makes one: levels in numeric order,
    spelled with 15 significant digits, numbers spelled alike being one level. Whole numbers are
    labelled as integers.

    Why R's rule rather than one level per distinct double: a level is matched by its spelling
    everywhere else (new data in ``predict``, ids given as text, ``ranef`` read back in R, the
    design of data in partitions), so a level per double would make two levels that every later
    step merges again (a fit with two levels predicting both rows with one). R's rule gives one
    mapping for all of them, and it is what lme4 fits on the same data.

    >>> f = factor_of_numbers(np.array([0.3, 0.1 + 0.2, np.nan, 2.0]))
    >>> f.levels, f.labels, f.values.tolist()
    (['0.3', '2'], [0.3, 2], [0, 0, -1, 1])
    """
    x = np.asarray(x, dtype=float)
    mask = np.isnan(x)
    uniq = np.unique(x[~mask])
    strings = [format_number(float(u)) for u in uniq]
    level_of: dict[str, int] = {}
    for s in strings:
        level_of.setdefault(s, len(level_of))
    lut = np.array([level_of[s] for s in strings], dtype=np.intp)
    codes = np.full(len(x), -1, dtype=np.intp)
    codes[~mask] = lut[np.searchsorted(uniq, x[~mask])]
    labels = [int(float(s)) if float(s).is_integer() else float(s) for s in level_of]
    return Value("factor", codes, list(level_of), labels)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


_CONSTANTS = {"TRUE": True, "FALSE": False, "T": True, "F": False, "pi": math.pi, "Inf": math.inf, "NaN": math.nan}
# R's missing values, by type: a row where a variable is NA is dropped from the model frame (na.omit)
NA_CONSTANTS = {"NA": "logical", "NA_real_": "numeric", "NA_integer_": "numeric", "NA_character_": "character"}
_CONTRASTS = {"treatment": "treatment", "contr.treatment": "treatment", "Treatment": "treatment",
              "sum": "sum", "contr.sum": "sum", "Sum": "sum", "helmert": "helmert", "contr.helmert": "helmert",
              "Helmert": "helmert", "poly": "poly", "contr.poly": "poly", "Poly": "poly"}
_FUNCTION_PREFIXES = ("np.", "numpy.", "base::", "stats::", "splines::", "math.")


def _canonical(func: str) -> str:
    for p in _FUNCTION_PREFIXES:
        if func.startswith(p):
            return func[len(p):]
    return func


def referenced_columns(node: Node) -> list[str]:
    """Names in ``node`` that must be data columns (function names and constants left out).

    >>> referenced_columns(parse("log(total.fruits) + C(f, sum) + I(x^2 > pi)"))
    ['total.fruits', 'f', 'x']
    """
    out: list[str] = []
    stack = [node]  # depth first, left to right, without recursion (a sum of a thousand columns is that deep)
    while stack:
        n = stack.pop()
        if isinstance(n, Name):
            if n.id not in _CONSTANTS and n.id not in NA_CONSTANTS and n.id not in out:
                out.append(n.id)
        elif isinstance(n, Call):
            fn = _canonical(n.func)
            args = list(n.args)
            if fn == "Q" and args and isinstance(args[0][1], Str):
                if args[0][1].value not in out:
                    out.append(args[0][1].value)
                continue
            if fn in ("C", "contrasts") and len(args) > 1:
                args = args[:1] + [a for a in args[1:] if not isinstance(a[1], Name) or a[1].id not in _CONTRASTS]
            stack.extend(v for _, v in reversed(args))
        elif isinstance(n, (Op, Unary, Paren)):
            stack.extend(reversed((n.left, n.right) if isinstance(n, Op) else (n.operand,) if isinstance(n, Unary)
                                  else (n.inner,)))
    return out


# ---------------------------------------------------------------------------------------- evaluation
class _Context:
    def __init__(self, data: pd.DataFrame, state: dict, learn: bool, collect: dict | None = None):
        self.data, self.state, self.learn, self.collect = data, state, learn, collect
        self.n = len(data)


def evaluate(node: Node | str, data: pd.DataFrame, state: dict | None = None, learn: bool = True,
             collect: dict | None = None) -> Value:
    """The value of one formula variable on ``data``.

    ``state`` holds what stateful transforms learned; with ``learn=False`` it must hold them
    already (new data are transformed with the training parameters). With a ``collect`` dict,
    every stateful transform stores a mergeable summary of its input there instead of learning
    (data in chunks: :func:`merge_summaries` combines the chunks', :func:`state_from_summaries`
    turns them into the parameters); the values returned are then placeholders.

    >>> chunks = [pd.DataFrame({"x": [1., 2]}), pd.DataFrame({"x": [3., 4, 5]})]
    >>> parts = []
    >>> for c in chunks:
    ...     parts.append({})
    ...     _ = evaluate("scale(x)", c, collect=parts[-1])
    >>> state = state_from_summaries(merge_summaries(parts))
    >>> whole = {}
    >>> _ = evaluate("scale(x)", pd.concat(chunks), whole)
    >>> bool(np.allclose(state["scale(x)"], whole["scale(x)"]))
    True
    """
    node = parse(node) if isinstance(node, str) else node
    ctx = _Context(data, {} if state is None else state, learn, collect)
    v = _eval(node, ctx)
    if v.values.ndim == 0 or (v.values.shape[0] != ctx.n):
        v = replace(v, values=np.broadcast_to(v.values, (ctx.n,) + v.values.shape[1:]).copy())
    return v


def _err(node: Node, message: str) -> FormulaError:
    return FormulaError(f"{message} in {deparse(node)!r}")


def _eval(node: Node, ctx: _Context) -> Value:
    if isinstance(node, Num):
        return Value("numeric", np.array(node.value))
    if isinstance(node, Str):
        return Value("character", np.array(node.value, dtype=object))
    if isinstance(node, Paren):
        return _eval(node.inner, ctx)
    if isinstance(node, Name):
        if node.id in ctx.data.columns:
            return column_value(ctx.data, node.id)
        if node.id in _CONSTANTS:
            c = _CONSTANTS[node.id]
            return Value("logical" if isinstance(c, bool) else "numeric", np.array(float(c)))
        if node.id in NA_CONSTANTS:
            kind = NA_CONSTANTS[node.id]
            return Value(kind, np.array(None, dtype=object) if kind == "character" else np.array(np.nan))
        close = difflib.get_close_matches(node.id, [str(c) for c in ctx.data.columns], n=1)
        raise FormulaError(f"unknown column {node.id!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if isinstance(node, Unary):
        x = _eval(node.operand, ctx)
        if node.op == "!":
            return Value("logical", _logical_not(_as_logical(x, node)))
        if node.op in "+-":
            v = _as_number(x, node)
            return Value("numeric", -v if node.op == "-" else v)
        raise _err(node, f"operator {node.op!r} cannot be evaluated")
    if isinstance(node, Op):
        return _binary(node, ctx)
    if isinstance(node, Call):
        fn = _canonical(node.func)
        if fn not in FUNCTIONS:
            raise FormulaError(f"function {node.func}() is not supported in a formula (in {deparse(node)!r}); "
                               f"supported: {', '.join(sorted(FUNCTIONS))}")
        return FUNCTIONS[fn](node, ctx)
    raise _err(node, "cannot evaluate")


def _as_number(v: Value, node: Node) -> np.ndarray:
    if v.kind in ("numeric", "logical"):
        return v.values.astype(float)
    raise _err(node, f"arithmetic needs numbers, but a {v.kind} was given (use as.numeric() to take a "
                     "factor's codes)")


def _as_logical(v: Value, node: Node) -> np.ndarray:
    if v.kind in ("numeric", "logical"):
        x = v.values.astype(float)
        return np.where(np.isnan(x), np.nan, (x != 0).astype(float))
    raise _err(node, f"a logical operator needs TRUE/FALSE values, not a {v.kind}")


def _logical_not(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), np.nan, 1.0 - x)


def _labels(v: Value) -> np.ndarray:
    """Values as R strings (for comparisons with text)."""
    if v.kind == "factor":
        lv = np.array(v.levels + [None], dtype=object)
        return lv[np.where(v.values < 0, len(v.levels), v.values)]
    if v.kind == "character":
        return v.values
    return np.array([None if np.isnan(x) else r_label(float(x)) for x in np.ravel(v.values)], dtype=object)


def _binary(node: Op, ctx: _Context) -> Value:
    op = node.op
    a, b = _eval(node.left, ctx), _eval(node.right, ctx)
    if op in ("==", "!=", "<", ">", "<=", ">=") and ("factor" in (a.kind, b.kind) or "character" in (a.kind, b.kind)):
        if op not in ("==", "!="):
            raise _err(node, f"'{op}' is not meaningful for text or factors")
        la, lb = _labels(a), _labels(b)
        res = np.asarray(la == lb, dtype=float) if op == "==" else np.asarray(la != lb, dtype=float)
        na = pd.isna(la) | pd.isna(lb)
        return Value("logical", np.where(na, np.nan, res))
    if op == "%in%":
        table = set(_labels(b).tolist())
        la = _labels(a)
        return Value("logical", np.array([float(x in table) for x in np.atleast_1d(la)]))
    if op in ("&", "&&", "|", "||"):
        x, y = _as_logical(a, node), _as_logical(b, node)
        with np.errstate(invalid="ignore"):
            if op in ("&", "&&"):
                res = np.where((x == 0) | (y == 0), 0.0, np.where(np.isnan(x) | np.isnan(y), np.nan, 1.0))
            else:
                res = np.where((x == 1) | (y == 1), 1.0, np.where(np.isnan(x) | np.isnan(y), np.nan, 0.0))
        return Value("logical", res)
    x, y = _as_number(a, node), _as_number(b, node)
    with np.errstate(all="ignore"):
        if op == "+":
            return Value("numeric", x + y)
        if op == "-":
            return Value("numeric", x - y)
        if op == "*":
            return Value("numeric", x * y)
        if op == "/":
            return Value("numeric", x / y)
        if op == "^":
            return Value("numeric", np.power(x, y))
        if op == "%%":
            return Value("numeric", np.mod(x, y))
        if op == "%/%":
            return Value("numeric", np.floor_divide(x, y))
        cmp = {"==": np.equal, "!=": np.not_equal, "<": np.less, ">": np.greater, "<=": np.less_equal,
               ">=": np.greater_equal}
        if op in cmp:
            return Value("logical", np.where(np.isnan(x) | np.isnan(y), np.nan, cmp[op](x, y).astype(float)))
    raise _err(node, f"operator {op!r} has no meaning inside a variable; inside I() R's arithmetic operators "
                     "are + - * / ^ %% %/%")


# ---------------------------------------------------------------------------------------- functions
def _args(node: Call, names: list[str], required: int = 1) -> dict[str, Node]:
    """R's argument matching: keywords by (partial) name, then positions."""
    out: dict[str, Node] = {}
    positional = []
    for key, val in node.args:
        if key is None:
            positional.append(val)
            continue
        match = [n for n in names if n == key] or [n for n in names if n.startswith(key)]
        if len(match) != 1:
            raise _err(node, f"{node.func}() has no argument {key!r} (it takes {', '.join(names)})")
        out[match[0]] = val
    free = [n for n in names if n not in out]
    if len(positional) > len(free):
        raise _err(node, f"{node.func}() takes at most {len(names)} arguments ({', '.join(names)})")
    out.update(zip(free, positional))
    missing = [n for n in names[:required] if n not in out]
    if missing:
        raise _err(node, f"{node.func}() needs its argument {missing[0]!r}")
    return out


def _constant(node: Node, ctx: _Context, what: str) -> Any:
    """A literal argument: number, string, TRUE/FALSE, or c(...) of them."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, Num):
        return -node.operand.value
    if isinstance(node, Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, Name) and node.id in NA_CONSTANTS:
        return None if NA_CONSTANTS[node.id] == "character" else math.nan
    if isinstance(node, Name) and node.id == "NULL":
        return None
    if isinstance(node, Call) and node.func == "c":
        return [_constant(v, ctx, what) for _, v in node.args]
    if isinstance(node, Call) and node.func in ("seq", "seq_len") or isinstance(node, Op) and node.op == ":":
        v = _eval(node, ctx)
        return np.ravel(v.values).tolist()
    raise FormulaError(f"{what} must be a constant (a number, a string, TRUE/FALSE or c(...)), "
                       f"not {deparse(node)!r}")


def _numeric_arg(node: Node, ctx: _Context, call: Node) -> np.ndarray:
    v = _eval(node, ctx)
    x = _as_number(v, call)
    if v.matrix:
        if x.shape[1] != 1:
            raise _err(call, "this function takes a single column")
        x = x[:, 0]
    return np.broadcast_to(x, (ctx.n,)).astype(float) if x.ndim == 0 else x


def _elementwise(f: Callable[[np.ndarray], np.ndarray]):
    def handler(node: Call, ctx: _Context) -> Value:
        a = _args(node, ["x"])
        with np.errstate(all="ignore"):
            return Value("numeric", f(_numeric_arg(a["x"], ctx, node)))
    return handler


def _log(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x", "base"])
    x = _numeric_arg(a["x"], ctx, node)
    with np.errstate(all="ignore"):
        out = np.log(x)
        if "base" in a:
            out = out / math.log(float(_constant(a["base"], ctx, "log()'s base")))
    return Value("numeric", out)


def _round(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x", "digits"])
    digits = int(_constant(a["digits"], ctx, "round()'s digits")) if "digits" in a else 0
    return Value("numeric", np.round(_numeric_arg(a["x"], ctx, node), digits))


def _identity(node: Call, ctx: _Context) -> Value:
    return _eval(_args(node, ["x"])["x"], ctx)


def _q(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["name"])
    if not isinstance(a["name"], Str):
        raise _err(node, "Q() takes a column name in quotes")
    return _eval(Name(a["name"].span, a["name"].value), ctx)


def _as_factor_arg(node: Node, ctx: _Context) -> Value:
    """The argument of factor(), C(), relevel(), interaction(), as a factor: a column of integers
    exactly (ids above 2**53 stay apart), numbers by their R spelling, text and logicals as R does."""
    exact = _integer_column_factor(node, ctx)
    if exact is not None:
        return exact
    v = _eval(node, ctx)
    if v.kind != "numeric":
        return v.as_factor()
    if v.values.ndim == 2:
        raise _err(node, "a matrix cannot be a factor")
    return factor_of_numbers(v.values)


def _integer_column_factor(node: Node, ctx: _Context) -> Value | None:
    """``node`` read as a factor exactly when it names a column of integers (None otherwise): its
    values as numbers would lose ids above 2**53."""
    inner = node.inner if isinstance(node, Paren) else node
    if isinstance(inner, Name) and inner.id in ctx.data.columns and pd.api.types.is_integer_dtype(ctx.data[inner.id].dtype):
        return column_factor(ctx.data, inner.id)
    return None


def _factor(node: Call, ctx: _Context, ordered: bool = False) -> Value:
    a = _args(node, ["x", "levels", "labels", "ordered"] if node.func != "as.factor" else ["x"])
    v = _integer_column_factor(a["x"], ctx) if "levels" not in a else None
    if v is None:
        v = _eval(a["x"], ctx)
    if "ordered" in a:
        ordered = bool(_constant(a["ordered"], ctx, "factor()'s ordered"))
    if "levels" in a:
        wanted = _constant(a["levels"], ctx, "factor()'s levels")
        wanted = wanted if isinstance(wanted, list) else [wanted]
        f = _factor_from(_labels(v) if v.kind != "numeric" else np.ravel(v.values).astype(object),
                         [r_label(w) if v.kind != "numeric" else w for w in wanted])
    else:
        keep_unused = _canonical(node.func) == "as.factor"  # R's as.factor keeps a factor as it is
        if v.kind == "factor":
            f = v if keep_unused else v.drop_unused()  # factor(f) keeps the levels that occur, in f's order
        elif v.kind == "numeric":
            f = factor_of_numbers(np.ravel(v.values))
        elif v.kind == "logical":
            f = v.as_factor().drop_unused()
        else:
            f = _factor_from(v.values)
        f = _learned_levels(node, ctx, f, keep_unused)
        if ctx.collect is not None:
            return f
    if "labels" in a:
        new = _constant(a["labels"], ctx, "factor()'s labels")
        new = new if isinstance(new, list) else [new]
        if len(new) != len(f.levels):
            raise _err(node, f"labels has {len(new)} values for {len(f.levels)} levels")
        f = replace(f, levels=[str(x) for x in new], labels=list(new))
    return replace(f, ordered=ordered or (f.ordered and node.func in ("factor", "as.factor") and "levels" not in a
                                          and v.kind == "factor"), contrasts=None)


def _contrast_call(node: Call, ctx: _Context) -> Value:
    """``C(f, sum)`` (R) and ``C(f)`` (formulaic's spelling: treatment contrasts)."""
    a = _args(node, ["object", "contr", "how.many"])
    f = _learned_levels(node, ctx, _as_factor_arg(a["object"], ctx), keep_unused=True)
    kind = "treatment"
    if "contr" in a:
        c = a["contr"]
        name = c.id if isinstance(c, Name) else c.value if isinstance(c, Str) else None
        if name not in _CONTRASTS:
            raise _err(node, f"unknown contrasts {deparse(c)!r}; use treatment, sum, helmert or poly")
        kind = _CONTRASTS[name]
    return replace(f, contrasts=kind)


def _relevel(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x", "ref"], required=2)
    f = _as_factor_arg(a["x"], ctx)
    ref = r_label(_constant(a["ref"], ctx, "relevel()'s ref"))
    key = deparse(node)
    if ctx.collect is not None or (not ctx.learn and key in ctx.state):  # the levels of all the data
        return _learned_levels(node, ctx, f, keep_unused=True, ref=ref)
    if ref not in f.levels:
        raise _err(node, f"relevel(): {ref!r} is not a level (levels: {f.levels[:10]})")
    i = f.levels.index(ref)
    order = [i] + [j for j in range(len(f.levels)) if j != i]
    remap = np.argsort(order)
    codes = np.where(f.values >= 0, remap[np.maximum(f.values, 0)], -1)
    f = replace(f, values=codes, levels=[f.levels[j] for j in order], labels=[f.labels[j] for j in order])
    return _learned_levels(node, ctx, f, keep_unused=True)


def _as_numeric(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x"])
    v = _eval(a["x"], ctx)
    if v.kind == "factor":
        x = np.where(v.values < 0, np.nan, v.values + 1.0)
    elif v.kind == "character":
        x = np.array([float(s) if s is not None and _is_number(s) else np.nan for s in v.values])
    else:
        x = v.values.astype(float)
    if node.func.endswith("integer"):
        x = np.trunc(x)
    return Value("numeric", x)


def _as_character(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x"])
    return Value("character", _labels(_eval(a["x"], ctx)))


def _as_logical_call(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x"])
    return Value("logical", _as_logical(_eval(a["x"], ctx), node))


def _ifelse(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["test", "yes", "no"], required=3)
    test = _as_logical(_eval(a["test"], ctx), node)
    yes, no = _eval(a["yes"], ctx), _eval(a["no"], ctx)
    if yes.kind in ("numeric", "logical") and no.kind in ("numeric", "logical"):
        return Value("numeric", np.where(np.isnan(test), np.nan, np.where(test == 1, yes.values, no.values)))
    ly, ln = _labels(yes), _labels(no)
    return Value("character", np.where(np.isnan(test), None, np.where(test == 1, ly, ln)).astype(object))


def _pminmax(node: Call, ctx: _Context) -> Value:
    vals = [_numeric_arg(v, ctx, node) for k, v in node.args if k != "na.rm"]
    f = np.minimum if node.func.endswith("pmin") else np.maximum
    out = vals[0]
    for v in vals[1:]:
        out = f(out, v)
    return Value("numeric", out)


def _stateful(node: Call, ctx: _Context, learn: Callable[[], Any], summary: Callable[[], tuple] | None = None,
              placeholder: Any = None, key: str | None = None) -> Any:
    """The transform's parameters: learned, or stored (``learn=False``), or, when collecting, its input's
    mergeable ``summary()`` (a ``(kind, static arguments, moments)`` triple) recorded and a placeholder returned.
    They are kept under ``key`` (the call as R spells it unless given)."""
    key = deparse(node) if key is None else key
    if ctx.collect is not None:
        if summary is None:
            raise _err(node, "this transform learns from all rows at once (knots at quantiles), which data read "
                             "in chunks cannot give exactly; give its knots= and Boundary.knots= explicitly")
        _record(ctx.collect, key, summary())
        return placeholder
    if ctx.learn:
        ctx.state[key] = learn()
    elif key not in ctx.state:
        raise FormulaError(f"{deparse(node)} was not part of the fitted model")
    return ctx.state[key]


# ----------------------------------------------------------------- levels learned from all the data
def final_levels(orders: frozenset | set, used: dict) -> tuple[list[str], list[Any]]:
    """(level strings, labels) of a factor seen in parts: the order every part declares, when they
    all declare the same one, else sorted as R sorts levels (numbers by value, text by collation).

    >>> final_levels({("b", "a")}, {"a": "a", "b": "b"}), final_levels({("c",), ("a", "b")}, {"c": "c", "a": "a"})
    ((['b', 'a'], ['b', 'a']), (['a', 'c'], ['a', 'c']))
    """
    if len(orders) == 1:
        order = [s for s in next(iter(orders)) if s in used]
    else:
        order = sorted(used, key=(lambda s: used[s]) if _are_numbers(used.values()) else r_sort_key)  # ints exactly
    return order, [used[s] for s in order]


def _level_summary(f: Value, keep_unused: bool) -> tuple:
    """A factor's levels as a mergeable summary: (its level order, {level string: label} of the
    levels that occur, or of all its levels with ``keep_unused``)."""
    if keep_unused:
        used = dict(zip(f.levels, f.labels))
    else:
        codes = np.unique(f.values[f.values >= 0])
        used = {f.levels[c]: f.labels[c] for c in codes}
    return frozenset([tuple(f.levels)]), used


def _on_levels(f: Value, strings: list[str], labels: list[Any]) -> Value:
    """``f`` coded on the levels ``strings`` (learned from all the data); a value among none of them
    becomes a further level, after them (new data: the model frame then names it as unseen)."""
    index = {s: i for i, s in enumerate(strings)}
    extra = [s for s in f.levels if s not in index]
    for s in extra:
        index[s] = len(index)
    lut = np.array([index[s] for s in f.levels] + [-1], dtype=np.intp)
    codes = lut[np.where(f.values < 0, len(f.levels), f.values)]
    extra_labels = [f.labels[f.levels.index(s)] for s in extra]
    return replace(f, values=codes, levels=list(strings) + extra, labels=list(labels) + extra_labels)


def _learned_levels(node: Call, ctx: _Context, f: Value, keep_unused: bool, ref: str | None = None) -> Value:
    """A factor made by ``node`` on the levels of all the data, which a function of its codes
    (``as.numeric(factor(f))``) or its first level (``relevel``) depends on: learned (``learn``),
    summarised for data in parts (``collect``; ``ref`` is relevel's), or applied (new data, parts)."""
    key = deparse(node)
    if ctx.collect is not None:
        _record(ctx.collect, key, ("levels", (ref, key), _level_summary(f, keep_unused)))
        return f
    if ctx.learn:
        ctx.state[key] = (list(f.levels), list(f.labels))
        return f
    if key not in ctx.state:  # a design learned before levels were kept: the values' own levels
        return f
    return _on_training_levels(key, f, *ctx.state[key])


def _on_training_levels(key: str, f: Value, strings: list[str], labels: list[Any]) -> Value:
    """``f`` (new data) on the levels learned in training; a level training did not have is refused
    (its code, or its place among the levels, would mean nothing the model learned)."""
    out = _on_levels(f, strings, labels)
    if len(out.levels) > len(strings):
        used = np.unique(out.values[out.values >= len(strings)])
        if len(used):
            unseen = [out.levels[c] for c in used[:5]]
            raise DataError(f"new data has level(s) {unseen} of {key!r} that training did not have; training levels: "
                            f"{strings[:10]}{' ...' if len(strings) > 10 else ''}")
        out = replace(out, levels=out.levels[: len(strings)], labels=out.labels[: len(strings)])
    return out


def _merge_levels(a: tuple, b: tuple) -> tuple:
    return a[0] | b[0], {**a[1], **b[1]}


def _finish_levels(static: tuple, summary: tuple) -> tuple[list[str], list[Any]]:
    ref, key = static
    strings, labels = final_levels(*summary)
    if ref is not None:
        if ref not in strings:
            raise FormulaError(f"relevel(): {ref!r} is not a level (levels: {strings[:10]}) in {key!r}")
        i = strings.index(ref)
        strings, labels = [ref] + strings[:i] + strings[i + 1:], [labels[i]] + labels[:i] + labels[i + 1:]
    return strings, labels


def _merge_combinations(a: tuple, b: tuple) -> tuple:
    return [_merge_levels(x, y) for x, y in zip(a[0], b[0])], {**a[1], **b[1]}


def _finish_combinations(static: tuple, summary: tuple) -> tuple[list[str], list[str]]:
    """interaction()'s levels: every combination of the factors' levels (with ``drop``: those that
    occur), the first factor varying fastest."""
    (drop,), (parts, combos) = static, summary
    levels = [final_levels(*p)[0] for p in parts]
    if not drop:
        strings = _all_combinations(levels)
        return strings, list(strings)
    rank = [{s: i for i, s in enumerate(lv)} for lv in levels]
    strings = sorted(combos, key=lambda c: tuple(r[s] for r, s in zip(rank, combos[c]))[::-1])
    return strings, list(strings)


# ----------------------------------------------------------------- stateful transforms in chunks
def _moments(x: np.ndarray, order: int) -> tuple:
    """(n, mean, central sums M_2..M_order, min, max) of the non-missing values of x."""
    ok = x[~np.isnan(x)]
    if len(ok) == 0:
        return (0, 0.0, np.zeros(max(order - 1, 0)), np.inf, -np.inf)
    m = float(ok.mean())
    d = ok - m
    return (len(ok), m, np.array([float(np.sum(d**k)) for k in range(2, order + 1)]), float(ok.min()),
            float(ok.max()))


def _merge_moments(a: tuple, b: tuple) -> tuple:
    """Central sums of two samples combined (Pebay's formulas: each side's sums shifted to the new mean)."""
    na, ma, Ma, lo_a, hi_a = a
    nb, mb, Mb, lo_b, hi_b = b
    if na == 0 or nb == 0:
        return b if na == 0 else a
    n = na + nb
    m = ma + (mb - ma) * nb / n
    order = len(Ma) + 1
    out = np.zeros(len(Ma))
    for side_n, side_m, side_M in ((na, ma, Ma), (nb, mb, Mb)):
        sums = np.concatenate([[side_n, 0.0], side_M])  # sum of (x - side mean)^j, j = 0..order
        shift = side_m - m
        for k in range(2, order + 1):
            out[k - 2] += sum(math.comb(k, j) * sums[j] * shift ** (k - j) for j in range(k + 1))
    return (n, m, out, min(lo_a, lo_b), max(hi_a, hi_b))


def merge_summaries(parts: list[dict]) -> dict:
    """The stateful transforms' summaries of several chunks (``evaluate(..., collect=)``), combined."""
    out: dict = {}
    for part in parts:
        for key, summary in part.items():
            _record(out, key, summary)
    return out


def _record(out: dict, key: str, summary: tuple) -> None:
    """Add a transform's ``(kind, static arguments, moments)`` summary to ``out``, merging the moments."""
    kind, static, moments = summary
    old = out.get(key)
    merge = _MERGE.get(kind, _merge_moments)
    out[key] = (kind, static, moments if old is None else merge(old[2], moments))


def state_from_summaries(summaries: dict) -> dict:
    """The parameters every stateful transform learns, from its merged summary: what ``evaluate``
    learns from all rows at once, to rounding."""
    return {key: _FINISH[kind](static, moments) for key, (kind, static, moments) in summaries.items()}


def _finish_scale(static: tuple, mom: tuple) -> tuple[float, float]:
    center_arg, scale_arg = static
    n, mean, M = mom[0], mom[1], mom[2]
    c = mean if center_arg is True else 0.0 if center_arg is False else float(center_arg)
    if scale_arg is True:
        s = float(np.sqrt((M[0] + n * (mean - c) ** 2) / max(n - 1, 1)))
    else:
        s = 1.0 if scale_arg is False else float(scale_arg)
    return c, s


def _finish_poly(static: tuple, mom: tuple) -> tuple[list, list]:
    """R's poly() recurrence from central moments: the polynomials in u = (x - mean)/sd, integrated
    against the sample's moments (exact in exact arithmetic; accurate for the low degrees poly() is used for)."""
    (degree,) = static
    n, mean, M = mom[0], mom[1], mom[2]
    sd = float(np.sqrt(M[0] / n)) if n and M[0] > 0 else 1.0
    mu_u = np.concatenate([[n, 0.0], M / sd ** np.arange(2, len(M) + 2)])  # sum u^k, k = 0..2 degree + 1

    def integral(coef: np.ndarray) -> float:  # sum over the sample of the polynomial with these coefficients in u
        return float(coef @ mu_u[: len(coef)])

    alpha, norm2 = [], [1.0]
    P_prev, P = np.zeros(1), np.ones(1)
    norm2.append(integral(np.polynomial.polynomial.polymul(P, P)))
    for i in range(degree):
        uPP = np.polynomial.polynomial.polymul([0.0, 1.0], np.polynomial.polynomial.polymul(P, P))
        a_u = integral(uPP) / norm2[i + 1]
        alpha.append(mean + sd * a_u)
        # (x - alpha_i) P = sd (u - a_u) P
        nxt = sd * np.polynomial.polynomial.polymul([-a_u, 1.0], P)
        if i > 0:
            nxt = np.polynomial.polynomial.polysub(nxt, (norm2[i + 1] / norm2[i]) * P_prev)
        P_prev, P = P, nxt
        norm2.append(integral(np.polynomial.polynomial.polymul(P, P)))
    return alpha, norm2


def _finish_spline(static: tuple, mom: tuple) -> tuple[list, list]:
    boundary, knots = static
    return [float(b) for b in (boundary if boundary is not None else (mom[3], mom[4]))], list(knots)


_MERGE: dict[str, Callable[[tuple, tuple], tuple]] = {"levels": _merge_levels, "interaction": _merge_combinations}
_FINISH: dict[str, Callable[[tuple, tuple], Any]] = {
    "levels": _finish_levels,
    "interaction": _finish_combinations,
    "scale": _finish_scale,
    "center": lambda static, mom: float(mom[1]),
    "poly": _finish_poly,
    "spline": _finish_spline,
}


def _scale(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x", "center", "scale"])
    x = _numeric_arg(a["x"], ctx, node)
    center_arg = _constant(a["center"], ctx, "scale()'s center") if "center" in a else True
    scale_arg = _constant(a["scale"], ctx, "scale()'s scale") if "scale" in a else True

    def learn():
        ok = x[~np.isnan(x)]
        c = float(ok.mean()) if center_arg is True else 0.0 if center_arg is False else float(center_arg)
        if scale_arg is True:
            s = float(np.sqrt(np.sum((ok - c) ** 2) / max(len(ok) - 1, 1)))
        else:
            s = 1.0 if scale_arg is False else float(scale_arg)
        return c, s

    c, s = _stateful(node, ctx, learn, lambda: ("scale", (center_arg, scale_arg), _moments(x, 2)), (0.0, 1.0))
    with np.errstate(all="ignore"):
        return Value("numeric", ((x - c) / s)[:, None], matrix=True)


def _center(node: Call, ctx: _Context) -> Value:
    a = _args(node, ["x"])
    x = _numeric_arg(a["x"], ctx, node)
    c = _stateful(node, ctx, lambda: float(np.nanmean(x)), lambda: ("center", (), _moments(x, 2)), 0.0)
    return Value("numeric", x - c)


def _poly(node: Call, ctx: _Context) -> Value:
    """R's ``poly()``: orthogonal (or ``raw``) polynomials of one variable, or of several as R's
    ``polym`` makes them: each variable's polynomials, then the products of one column of each (the
    constant for power 0) whose powers add up to 1..degree, the first variable's power varying
    fastest, named by the powers (``poly(x, z, degree = 2)1.0``)."""
    a: dict[str, Node] = {}
    for key, val in node.args:  # R's matching: keywords by (partial) name; positions are the variables
        if key is None:
            continue
        match = [n for n in ("degree", "coefs", "raw", "simple") if n.startswith(key)]
        if len(match) != 1:
            raise _err(node, f"poly() has no argument {key!r} (it takes the variables, degree and raw)")
        a[match[0]] = val
    variables = node.positional
    if not variables:
        raise _err(node, "poly() needs a variable")
    if len(variables) == 2 and "degree" not in a and not referenced_columns(variables[1]):
        a["degree"], variables = variables[1], variables[:1]  # poly(x, 2): one number is the degree, as in R
    if "coefs" in a:
        raise _err(node, "poly()'s coefs= cannot be given in a formula: the coefficients are learned from the "
                         "training data and applied to new data")
    degree = _constant(a["degree"], ctx, "poly()'s degree") if "degree" in a else 1
    if isinstance(degree, list) or degree is None or degree != int(degree):
        raise _err(node, f"poly()'s degree must be one whole number, got {deparse(a['degree'])}")
    degree = int(degree)
    raw = bool(_constant(a["raw"], ctx, "poly()'s raw")) if "raw" in a else False
    if degree < 1:
        raise _err(node, "poly()'s degree must be at least 1")
    several = len(variables) > 1
    bases = []
    for i, v in enumerate(variables):
        x = _numeric_arg(v, ctx, node)
        key = f"{deparse(node)} [{deparse(v)}]" if several else deparse(node)
        bases.append(x[:, None] ** np.arange(1, degree + 1) if raw else _orthogonal_poly(node, ctx, x, degree, key))
    if not several:
        return Value("numeric", bases[0], colnames=[str(i) for i in range(1, degree + 1)], matrix=True)
    powers = [p[::-1] for p in itertools.product(range(degree + 1), repeat=len(variables))]  # R's expand.grid
    powers = [p for p in powers if 0 < sum(p) <= degree]
    n = ctx.n
    cols = []
    for p in powers:
        col = np.ones(n)
        for basis, k in zip(bases, p):
            if k:
                col = col * basis[:, k - 1]
        cols.append(col)
    return Value("numeric", np.column_stack(cols), colnames=[".".join(map(str, p)) for p in powers], matrix=True)


def _orthogonal_poly(node: Call, ctx: _Context, x: np.ndarray, degree: int, key: str) -> np.ndarray:
    """R's orthogonal polynomials of ``x`` of degrees 1..degree, their recurrence learned under ``key``."""
    def learn():
        ok = x[~np.isnan(x)]
        if len(np.unique(ok)) <= degree:
            raise _err(node, f"poly(): degree {degree} needs more than {degree} distinct values of the variable")
        # R's poly(): orthogonal polynomials by a three-term recurrence on the centred variable
        alpha, norm2 = [], [1.0]
        Z_prev, Z = np.zeros_like(ok), np.ones_like(ok)
        norm2.append(float(Z @ Z))
        for i in range(degree):
            alpha.append(float((ok * Z) @ Z / (Z @ Z)))
            Z_next = (ok - alpha[i]) * Z - (norm2[i + 1] / norm2[i] if i > 0 else 0.0) * Z_prev
            Z_prev, Z = Z, Z_next
            norm2.append(float(Z @ Z))
        return alpha, norm2

    alpha, norm2 = _stateful(node, ctx, learn, lambda: ("poly", (degree,), _moments(x, 2 * degree + 1)),
                             ([0.0] * degree, [1.0] * (degree + 2)), key=key)
    cols = [np.ones_like(x), x - alpha[0]]
    for i in range(1, degree):
        cols.append((x - alpha[i]) * cols[i] - (norm2[i + 1] / norm2[i]) * cols[i - 1])
    return np.column_stack(cols[1:]) / np.sqrt(np.asarray(norm2[2:]))


def _spline(node: Call, ctx: _Context) -> Value:
    from .splines import bspline_basis, natural_spline_basis

    natural = _canonical(node.func) == "ns"
    names = ["x", "df", "knots", "intercept", "Boundary.knots"] + ([] if natural else ["degree"])
    a = _args(node, names)
    x = _numeric_arg(a["x"], ctx, node)
    df = int(_constant(a["df"], ctx, "df")) if "df" in a else None
    intercept = bool(_constant(a["intercept"], ctx, "intercept")) if "intercept" in a else False
    degree = int(_constant(a["degree"], ctx, "degree")) if "degree" in a else 3

    def learn():
        ok = x[~np.isnan(x)]
        boundary = (_constant(a["Boundary.knots"], ctx, "Boundary.knots") if "Boundary.knots" in a
                    else [float(ok.min()), float(ok.max())])
        if "knots" in a:
            knots = _constant(a["knots"], ctx, "knots")
            knots = [float(k) for k in (knots if isinstance(knots, list) else [knots])]
        else:
            n_inner = (df - 1 - intercept) if natural else (df - degree - 1 + (1 - intercept)) if df else 0
            if df is None or n_inner <= 0:
                n_inner = 0
            inside = ok[(ok >= boundary[0]) & (ok <= boundary[1])]
            probs = np.linspace(0, 1, n_inner + 2)[1:-1]
            knots = [float(q) for q in np.quantile(inside, probs)] if n_inner else []
        return [float(b) for b in boundary], knots

    given_knots = "knots" in a or not df or \
        ((df - 1 - intercept) if natural else (df - degree - 1 + (1 - intercept))) <= 0
    summary = None
    if given_knots:
        bk = _constant(a["Boundary.knots"], ctx, "Boundary.knots") if "Boundary.knots" in a else None
        kn = _constant(a["knots"], ctx, "knots") if "knots" in a else []
        kn = [float(k) for k in (kn if isinstance(kn, list) else [kn])]
        summary = lambda: ("spline", (bk, kn), _moments(x, 2))  # noqa: E731
    boundary, knots = _stateful(node, ctx, learn, summary, ([0.0, 1.0], []))
    basis = (natural_spline_basis(x, knots, boundary, intercept) if natural
             else bspline_basis(x, knots, boundary, degree, intercept))
    return Value("numeric", basis, colnames=[str(i) for i in range(1, basis.shape[1] + 1)], matrix=True)


def _interaction(node: Call, ctx: _Context) -> Value:
    """R's ``interaction(f, g, drop = FALSE)``: every combination of the factors' levels is a level
    (``drop = TRUE``: those that occur), the first factor varying fastest, spelled ``a.x``."""
    a = {k: v for k, v in node.args if k is not None}
    unknown = [k for k in a if k != "drop"]
    if unknown:
        raise _err(node, f"interaction() has no argument {unknown[0]!r} here (it takes the factors and drop)")
    drop = bool(_constant(a["drop"], ctx, "interaction()'s drop")) if "drop" in a else False
    facs = [_as_factor_arg(v, ctx) for v in node.positional]
    if not facs:
        raise _err(node, "interaction() needs factors")
    key = deparse(node)
    f = combine_factors(facs, sep=".", first_fastest=True)
    if ctx.collect is not None:  # each factor's levels, and the combinations that occur
        combos = dict(zip(f.levels, _combination_parts(facs)))
        _record(ctx.collect, key, ("interaction", (drop,), ([_level_summary(g, True) for g in facs], combos)))
        return f
    if not ctx.learn and key in ctx.state:
        return _on_training_levels(key, f, *ctx.state[key])
    if not drop:
        strings = _all_combinations([g.levels for g in facs])
        f = _on_levels(f, strings, strings)
    if ctx.learn:
        ctx.state[key] = (list(f.levels), list(f.labels))
    return f


def _all_combinations(levels: list[list[str]]) -> list[str]:
    """Every combination of the level lists, the first varying fastest, spelled ``a.x``."""
    return [".".join(c[::-1]) for c in itertools.product(*levels[::-1])]


def _combination_parts(facs: list[Value]) -> list[tuple[str, ...]]:
    """The level strings of each factor in every combination that occurs, in combine_factors' order."""
    codes = np.column_stack([f.values for f in facs])
    present = np.unique(codes[~(codes < 0).any(axis=1)][:, ::-1], axis=0)[:, ::-1]
    return [tuple(f.levels[c] for f, c in zip(facs, row)) for row in present.tolist()]


def combine_factors(facs: list[Value], sep: str = ":", first_fastest: bool = False) -> Value:
    """The interaction of factors: levels that occur, ``a:b`` spelled, ordered as R orders them
    (lme4's ``%i%``: the first factor varies slowest; ``interaction()``: fastest)."""
    codes = np.column_stack([f.values for f in facs])
    na = (codes < 0).any(axis=1)
    order_cols = codes[:, ::-1] if first_fastest else codes
    present = np.unique(order_cols[~na], axis=0)
    present = present[:, ::-1] if first_fastest else present
    lookup = {tuple(r): i for i, r in enumerate(present.tolist())}
    out = np.array([-1 if m else lookup[tuple(r)] for r, m in zip(codes.tolist(), na)], dtype=np.intp)
    levels = [sep.join(f.levels[c] for f, c in zip(facs, r)) for r in present.tolist()]
    return Value("factor", out, levels, list(levels))


FUNCTIONS: dict[str, Callable[[Call, _Context], Value]] = {
    "I": _identity, "identity": _identity, "Q": _q,
    "log": _log, "log2": _elementwise(np.log2), "log10": _elementwise(np.log10), "log1p": _elementwise(np.log1p),
    "exp": _elementwise(np.exp), "expm1": _elementwise(np.expm1), "sqrt": _elementwise(np.sqrt),
    "abs": _elementwise(np.abs), "absolute": _elementwise(np.abs), "sign": _elementwise(np.sign),
    "sin": _elementwise(np.sin), "cos": _elementwise(np.cos), "tan": _elementwise(np.tan),
    "asin": _elementwise(np.arcsin), "acos": _elementwise(np.arccos), "atan": _elementwise(np.arctan),
    "arcsin": _elementwise(np.arcsin), "arccos": _elementwise(np.arccos), "arctan": _elementwise(np.arctan),
    "sinh": _elementwise(np.sinh), "cosh": _elementwise(np.cosh), "tanh": _elementwise(np.tanh),
    "floor": _elementwise(np.floor), "ceiling": _elementwise(np.ceil), "ceil": _elementwise(np.ceil),
    "trunc": _elementwise(np.trunc), "round": _round, "square": _elementwise(np.square),
    "plogis": _elementwise(lambda x: 1 / (1 + np.exp(-x))), "qlogis": _elementwise(lambda p: np.log(p / (1 - p))),
    "factor": _factor, "as.factor": _factor, "ordered": lambda n, c: _factor(n, c, ordered=True),
    "as.ordered": lambda n, c: _factor(n, c, ordered=True), "C": _contrast_call, "relevel": _relevel,
    "as.numeric": _as_numeric, "as.double": _as_numeric, "as.integer": _as_numeric, "as.character": _as_character,
    "as.logical": _as_logical_call, "ifelse": _ifelse, "pmin": _pminmax, "pmax": _pminmax,
    "scale": _scale, "center": _center, "poly": _poly, "ns": _spline, "bs": _spline, "interaction": _interaction,
}
