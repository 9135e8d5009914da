"""lme4 model formulas in R's formula language: response, fixed terms, random-effect terms.

The formula is parsed as an R expression (:mod:`hiermio.formula.rsyntax`). lme4's ``findbars`` rules pick
out the random-effect terms ``(expr | g)``: ``||`` becomes one uncorrelated term per term label of
``expr`` (lme4's ``expandDoubleVerts``), and ``g1/g2`` becomes ``g1`` and ``g2:g1`` (lme4's
``expandSlash``). What is left is the fixed part, expanded by R's term algebra (``terms.formula``):
``a*b``, ``a:b``, ``a/b``, ``a %in% b``, ``(a + b + c)^2``, ``-``, ``0``/``1`` for the intercept,
terms ordered by degree, each term's variables in order of first appearance, and ``offset()`` kept
apart.

>>> f = parse_formula("Reaction ~ Days + (1 + Days | Subject)")
>>> f.response, f.fixed, [t.label for t in f.random]
('Reaction', 'Days', ['(1 + Days | Subject)'])
>>> [t.label for t in parse_formula("y ~ x + (1 + z || g) + (1 | a/b)").random]
['(1 | g)', '(0 + z | g)', '(1 | a)', '(1 | b:a)']
>>> parse_formula("y ~ a*b + offset(log(n))").fixed_terms.labels
['a', 'b', 'a:b']
"""

from __future__ import annotations

from functools import cached_property
from dataclasses import dataclass, field
from itertools import combinations

from ..core.exceptions import FormulaError
from .rsyntax import Call, Name, Node, Num, Op, Paren, Unary, deparse, parse, pointer, walk

__all__ = ["RandomTerm", "ParsedFormula", "Terms", "parse_formula", "expand_terms"]


@dataclass(frozen=True)
class Terms:
    """R's ``terms`` object of a right-hand side: variables, terms as sets of variables, intercept.

    ``variables`` are parse trees, in order of first appearance; each term is a tuple of indices
    into them, in that order; terms are sorted by degree (R's default ``keep.order = FALSE``).
    """

    variables: tuple[Node, ...]
    terms: tuple[tuple[int, ...], ...]
    intercept: bool
    offsets: tuple[Node, ...] = ()

    @property
    def variable_names(self) -> list[str]:
        return [deparse(v) for v in self.variables]

    @property
    def labels(self) -> list[str]:
        names = self.variable_names
        return [":".join(names[i] for i in t) for t in self.terms]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term ``(expr | group)`` after ``||`` and ``/`` expansion.

    ``expr`` and ``group`` are spelled as R deparses them (``"1 + Days"``, ``"cask:batch"``).
    """

    expr: str
    group: str
    lhs: Node = field(compare=False, repr=False)
    group_node: Node = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"({self.expr} | {self.group})"

    @property
    def terms(self) -> Terms:
        return expand_terms(self.lhs, f"random term {self.label}")

    @property
    def group_factors(self) -> list[Node]:
        """The factors whose interaction is the grouping factor (``a:b`` -> ``a``, ``b``)."""
        out: list[Node] = []

        def split(n: Node) -> None:
            if isinstance(n, Op) and n.op == ":":
                split(n.left)
                split(n.right)
            elif isinstance(n, Paren):
                split(n.inner)
            else:
                out.append(n)

        split(self.group_node)
        return out

    @property
    def group_name(self) -> str:
        """lme4's name for the grouping factor (``names(ranef(fit))``): a column's own name, without
        backticks, or the deparsed interaction (``"cask:batch"``).

        >>> parse_formula("y ~ (1 | `my school`)").random[0].group_name
        'my school'
        """
        node = self.group_node.inner if isinstance(self.group_node, Paren) else self.group_node
        return node.id if isinstance(node, Name) else self.group

    @property
    def group_columns(self) -> tuple[str, ...]:
        """The data columns the grouping factor is made of."""
        return tuple(dict.fromkeys(n.id for n in walk(self.group_node) if isinstance(n, Name)))


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed terms and random terms."""

    text: str
    response_node: Node = field(repr=False)
    fixed_node: Node | None = field(repr=False)
    random: tuple[RandomTerm, ...]

    @cached_property  # deparsing walks the tree; the design asks for these many times
    def response(self) -> str:
        return deparse(self.response_node)

    @cached_property
    def fixed(self) -> str:
        """The fixed part as R deparses it (``"1"`` when only the intercept is left)."""
        return deparse(self.fixed_node) if self.fixed_node is not None else "1"

    @property
    def fixed_formula(self) -> str:
        return f"{self.response} ~ {self.fixed}"

    @property
    def fixed_terms(self) -> Terms:
        node = self.fixed_node if self.fixed_node is not None else Num((0, 0), 1.0)
        return expand_terms(node, f"the fixed part {self.fixed!r}")

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct grouping factors, in order of first appearance."""
        return tuple(dict.fromkeys(t.group for t in self.random))


def _is_bar(node: Node) -> bool:
    return isinstance(node, Op) and node.op in ("|", "||")


def _split_plus(node: Node) -> list[Node]:
    """The summands of a top-level sum (``a + b - c`` -> ``a``, ``b``, and ``-c`` kept as it is),
    without recursion: a sum of a thousand covariates is a chain a thousand deep.

    >>> from hiermio.formula.rsyntax import deparse, parse
    >>> [deparse(n) for n in _split_plus(parse("a + b:c + log(d)"))]
    ['a', 'b:c', 'log(d)']
    """
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Op) and n.op == "+":
            stack += [n.right, n.left]
        else:
            out.append(n)
    return out


def _rebuild_sum(nodes: list[Node]) -> Node | None:
    if not nodes:
        return None
    out = nodes[0]
    for n in nodes[1:]:
        out = Op((out.span[0], n.span[1]), "+", out, n)
    return out


def _expand_slash(group: Node, text: str) -> list[Node]:
    """``a/b/c`` -> ``a``, ``b:a``, ``c:(b:a)`` as lme4's expandSlash names them."""
    if isinstance(group, Op) and group.op == "/":
        outer = _expand_slash(group.left, text)
        inner_parts = _expand_slash(group.right, text)
        if len(inner_parts) != 1:
            raise FormulaError("cannot read this nesting of grouping factors:" + pointer(text, *group.span))
        first = outer[-1]
        nested = Op(group.span, ":", inner_parts[0], first)
        return outer + [nested]
    for n in walk(group):
        if isinstance(n, Op) and n.op not in (":",):
            raise FormulaError(f"grouping factor {deparse(group)!r} must be a factor, or factors joined by ':' or "
                               "'/' (operator " + repr(n.op) + " here):" + pointer(text, *n.span))
        if isinstance(n, Unary):
            raise FormulaError(f"grouping factor {deparse(group)!r} must be a factor, or factors joined by ':' "
                               "or '/':" + pointer(text, *n.span))
    return [group]


def _double_bar_parts(lhs: Node) -> list[Node]:
    """``x * f || g`` -> ``1``, ``0 + x``, ``0 + f``, ``0 + x:f``: lme4's ``expandDoubleVerts``."""
    t = expand_terms(lhs, "")
    zero = Num(lhs.span, 0.0)
    parts: list[Node] = [Num(lhs.span, 1.0)] if t.intercept else []
    for term in t.terms:
        node = t.variables[term[0]]
        for i in term[1:]:
            node = Op(lhs.span, ":", node, t.variables[i])
        parts.append(Op(lhs.span, "+", zero, node))
    return parts


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part and random terms.

    Supports lme4's ``(1 | g)``, ``(1 + z | g)``, ``(z | g)`` (intercept implied), ``(0 + z | g)``,
    ``(z || g)``, crossed factors, nesting ``(1 | a/b)`` and interactions ``(1 | a:b)``, and R's
    formula operators in the fixed part.

    >>> parse_formula("y ~ 1 + (0 + x | g)").random[0].expr
    '0 + x'
    >>> parse_formula("y ~ x").random
    ()
    >>> parse_formula("y ~ (1 | batch/cask)").groups
    ('batch', 'cask:batch')
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    text = " ".join(formula.split())
    if text.count("~") != 1:
        raise FormulaError(f"formula needs exactly one '~' with the response on its left: {text!r}")
    tree = parse(text)
    if isinstance(tree, Unary) and tree.op == "~":
        raise FormulaError(f"formula has no response on the left of '~': {text!r}")
    if not (isinstance(tree, Op) and tree.op == "~"):
        raise FormulaError(f"formula needs exactly one '~' with the response on its left: {text!r}")
    lhs, rhs = tree.left, tree.right
    if any(isinstance(n, Op) and n.op in ("|", "||") for n in walk(lhs)):
        raise FormulaError("a random term must be in parentheses, as in y ~ x + (1 | g):" + pointer(text, *lhs.span))

    random: list[RandomTerm] = []
    fixed_parts: list[Node] = []
    for part in _split_plus(rhs):
        inner = part.inner if isinstance(part, Paren) else None
        if inner is not None and _is_bar(inner):
            bar: Op = inner
            if _is_bar(bar.left) or _is_bar(bar.right):
                raise FormulaError("a random term needs exactly one bar, as in (1 + x | g):" + pointer(text, *part.span))
            lhs_parts = _double_bar_parts(bar.left) if bar.op == "||" else [bar.left]
            for g in _expand_slash(bar.right, text):
                random.extend(RandomTerm(deparse(e), deparse(g), e, g) for e in lhs_parts)
            continue
        for n in walk(part):
            if _is_bar(n):
                raise FormulaError("a random term must be in parentheses, as in (1 + x | g):" + pointer(text, *n.span))
        fixed_parts.append(part)
    fixed = _rebuild_sum(fixed_parts)
    parsed = ParsedFormula(text=text, response_node=lhs, fixed_node=fixed, random=tuple(random))
    parsed.fixed_terms  # validates the fixed part's term algebra now, pointing at the offending token
    for t in random:
        t.terms
    return parsed


# ---------------------------------------------------------------------------------------- terms
class _Encoder:
    """R's term algebra (``terms.formula``) over parse trees."""

    def __init__(self, where: str):
        self.where = where
        self.variables: list[Node] = []
        self.keys: list[str] = []
        self.offsets: list[Node] = []
        self.intercept = True

    def var(self, node: Node) -> int:
        key = deparse(node)
        if key not in self.keys:
            self.keys.append(key)
            self.variables.append(node)
        return self.keys.index(key)

    def encode(self, node: Node) -> list[frozenset[int]]:
        if isinstance(node, Paren):
            return self.encode(node.inner)
        if isinstance(node, Num):
            if node.value == 1:
                self.intercept = True
                return []
            if node.value == 0:
                self.intercept = False
                return []
            raise FormulaError(f"the number {deparse(node)} cannot be a term in {self.where} (only 0 and 1 are, for "
                               "the intercept; wrap arithmetic in I())")
        if isinstance(node, Name):
            if node.id == ".":
                raise FormulaError(f"'.' (all other columns) is not supported in {self.where}: name the columns")
            return [frozenset([self.var(node)])]
        if isinstance(node, Call):
            if node.func == "offset":
                if len(node.args) != 1:
                    raise FormulaError(f"offset() takes one argument in {self.where}: {deparse(node)}")
                self.offsets.append(node.args[0][1])
                return []
            return [frozenset([self.var(node)])]
        if isinstance(node, Unary):
            if node.op == "+":
                return self.encode(node.operand)
            if node.op == "-":
                return self.remove([], node.operand)
            raise FormulaError(f"operator {node.op!r} is not a formula operator in {self.where}: {deparse(node)}; "
                               "wrap it in I()")
        if isinstance(node, Op):
            op = node.op
            if op == "+":  # a chain of sums read in a loop: a thousand covariates are a chain a thousand deep
                parts = _split_plus(node)
                out = self.encode(parts[0])
                for part in parts[1:]:
                    out = _union(out, self.encode(part))
                return out
            if op == "-":
                return self.remove(self.encode(node.left), node.right)
            if op == ":":
                return _interact(self.encode(node.left), self.encode(node.right))
            if op == "*":
                a, b = self.encode(node.left), self.encode(node.right)
                return _union(_union(a, b), _interact(a, b))
            if op == "/":
                a, b = self.encode(node.left), self.encode(node.right)
                everything = frozenset().union(*a) if a else frozenset()
                return _union(a, [everything | t for t in b])
            if op == "%in%":
                a, b = self.encode(node.left), self.encode(node.right)
                everything = frozenset().union(*b) if b else frozenset()
                return [t | everything for t in a]
            if op == "^":
                if not isinstance(node.right, Num) or node.right.value < 1 or node.right.value != int(node.right.value):
                    raise FormulaError(f"in {self.where}, '^' between terms needs a whole number on its right "
                                       f"({deparse(node)}); for a power write I({deparse(node)})")
                base = self.encode(node.left)
                out = list(base)
                for k in range(2, int(node.right.value) + 1):
                    out = _union(out, [frozenset().union(*c) for c in combinations(base, k)])
                return out
            raise FormulaError(f"operator {op!r} is not a formula operator in {self.where}: {deparse(node)}; "
                               "wrap arithmetic in I()")
        raise FormulaError(f"cannot read {deparse(node)!r} in {self.where}")

    def remove(self, terms: list[frozenset[int]], node: Node) -> list[frozenset[int]]:
        if isinstance(node, Num) and node.value in (0, 1):
            self.intercept = node.value == 0
            return terms
        saved = self.intercept
        gone = self.encode(node)
        self.intercept = saved
        return [t for t in terms if t not in gone]


def _union(a: list[frozenset[int]], b: list[frozenset[int]]) -> list[frozenset[int]]:
    out = list(a)
    for t in b:
        if t not in out:
            out.append(t)
    return out


def _interact(a: list[frozenset[int]], b: list[frozenset[int]]) -> list[frozenset[int]]:
    out: list[frozenset[int]] = []
    for ta in a:
        for tb in b:
            if (ta | tb) not in out:
                out.append(ta | tb)
    return out


def expand_terms(node: Node, where: str = "the formula") -> Terms:
    """R's ``terms()`` of a right-hand side: variables, terms sorted by degree, intercept, offsets.

    >>> t = expand_terms(parse("(a + b + c)^2 - a:b"))
    >>> t.labels, t.intercept
    (['a', 'b', 'c', 'a:c', 'b:c'], True)
    >>> expand_terms(parse("0 + f/x")).labels
    ['f', 'f:x']
    """
    enc = _Encoder(where)
    terms = [t for t in enc.encode(node) if t]
    terms.sort(key=len)  # stable: R orders terms by degree, then as written
    return Terms(tuple(enc.variables), tuple(tuple(sorted(t)) for t in terms), enc.intercept, tuple(enc.offsets))
