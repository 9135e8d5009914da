"""Parse lme4 model formulas into a fixed part and random-effect terms.

Only the random-effect bars are parsed here; every fixed and random-term *expression* is left as
text for formulaic to evaluate, so the fixed part supports whatever formulaic supports.

>>> f = parse_formula("Reaction ~ Days + (1 + Days | Subject)")
>>> f.response, f.fixed, [t.label for t in f.random]
('Reaction', 'Days', ['(1 + Days | Subject)'])
>>> [t.label for t in parse_formula("y ~ x + (1 + z || g) + (1 | a/b)").random]
['(1 | g)', '(0 + z | g)', '(1 | a)', '(1 | a:b)']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .exceptions import FormulaError

__all__ = ["RandomTerm", "ParsedFormula", "parse_formula"]

_IDENT = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term ``(expr | group)`` after ``||`` and ``/`` expansion.

    ``expr`` is a formulaic right-hand side (``"1 + Days"``); ``group`` is a grouping factor, one
    column name or an interaction of names joined by ``:`` (``"school:class"``).
    """

    expr: str
    group: str

    @property
    def label(self) -> str:
        return f"({self.expr} | {self.group})"

    @property
    def group_columns(self) -> tuple[str, ...]:
        return tuple(self.group.split(":"))


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed-part expression and random terms."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]

    @property
    def fixed_formula(self) -> str:
        return f"{self.response} ~ {self.fixed}"

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct grouping factors, in order of first appearance."""
        return tuple(dict.fromkeys(t.group for t in self.random))


def _pointer(text: str, start: int, end: int) -> str:
    return f"\n    {text}\n    {' ' * start}{'^' * max(1, end - start)}"


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it is not inside parentheses."""
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def _find_bar_groups(rhs: str, full: str, offset: int) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of top-level parenthesised groups that contain a bar."""
    spans, depth, start = [], 0, -1
    for i, ch in enumerate(rhs):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError("unbalanced ')' in formula:" + _pointer(full, offset + i, offset + i + 1))
            if depth == 0:
                before = rhs[:start].rstrip()
                is_call = bool(before) and (before[-1].isalnum() or before[-1] in "._")
                inner = rhs[start + 1 : i]
                if not is_call and "|" in _strip_nested(inner):
                    spans.append((start, i + 1))
    if depth != 0:
        raise FormulaError("unbalanced '(' in formula:" + _pointer(full, offset + start, len(full)))
    return spans


def _strip_nested(text: str) -> str:
    """``text`` with every parenthesised part removed (to look for top-level bars)."""
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _expand_group(group: str, full: str, where: tuple[int, int]) -> list[str]:
    """``a/b/c`` -> ``a``, ``a:b``, ``a:b:c``; validates each name."""
    levels = [g.strip() for g in group.split("/")]
    for part in levels:
        for name in part.split(":"):
            if not _IDENT.match(name.strip()):
                raise FormulaError(
                    f"grouping factor {group.strip()!r} must be column names joined by ':' or '/'"
                    + _pointer(full, *where)
                )
    return [":".join(n.strip() for n in ":".join(levels[: i + 1]).split(":")) for i in range(len(levels))]


def _expand_double_bar(expr: str) -> list[str]:
    """``1 + z || g`` means ``(1 | g) + (0 + z | g)``: one term per coefficient."""
    parts = [p.strip() for p in _split_top_level(expr, "+")]
    intercept = True
    slopes = []
    for p in parts:
        if p == "1":
            intercept = True
        elif p in ("0", "-1"):
            intercept = False
        elif p:
            slopes.append(p)
    return (["1"] if intercept else []) + [f"0 + {s}" for s in slopes]


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part and random terms.

    Supports ``(1 | g)``, ``(1 + z | g)``, ``(z | g)`` (intercept implied), ``(0 + z | g)``,
    ``(1 + z || g)`` (one term per coefficient), crossed factors, nesting ``(1 | a/b)`` and
    interaction grouping ``(1 | a:b)``.

    >>> parse_formula("y ~ 1 + (0 + x | g)").random[0].expr
    '0 + x'
    >>> parse_formula("y ~ x").random
    ()
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    text = " ".join(formula.split())
    if text.count("~") != 1:
        raise FormulaError(f"formula needs exactly one '~' with the response on its left: {text!r}")
    lhs, rhs = (s.strip() for s in text.split("~"))
    if not lhs:
        raise FormulaError(f"formula has no response on the left of '~': {text!r}")
    if not rhs:
        raise FormulaError(f"formula has nothing on the right of '~': {text!r}")
    offset = text.index("~") + 1 + (len(text.split("~")[1]) - len(text.split("~")[1].lstrip()))
    spans = _find_bar_groups(rhs, text, offset)

    random: list[RandomTerm] = []
    for start, end in spans:
        where = (offset + start, offset + end)
        inner = rhs[start + 1 : end - 1]
        top = _strip_nested(inner)
        double = "||" in top
        pieces = inner.split("||") if double else _split_top_level(inner, "|")
        if len(pieces) != 2 or "|" in pieces[1]:
            raise FormulaError("a random term needs exactly one bar, as in (1 + x | g):" + _pointer(text, *where))
        expr, group = pieces[0].strip(), pieces[1].strip()
        if not expr:
            raise FormulaError("random term has nothing before the bar (write '1' for an intercept):" + _pointer(text, *where))
        if not group:
            raise FormulaError("random term has no grouping factor after the bar:" + _pointer(text, *where))
        exprs = _expand_double_bar(expr) if double else [expr]
        for g in _expand_group(group, text, where):
            random.extend(RandomTerm(e, g) for e in exprs)

    fixed = rhs
    for start, end in reversed(spans):
        fixed = fixed[:start] + fixed[end:]
    fixed = _clean_plus(fixed)
    if not fixed:
        fixed = "1"
    return ParsedFormula(text=text, response=lhs, fixed=fixed, random=tuple(random))


def _clean_plus(expr: str) -> str:
    """Remove the '+' signs left dangling after random terms were cut out."""
    parts = [p.strip() for p in _split_top_level(expr, "+")]
    return " + ".join(p for p in parts if p)
