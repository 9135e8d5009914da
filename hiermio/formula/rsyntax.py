"""R's expression syntax: tokens, a parse tree with source spans, and R's deparse.

Model formulas are R expressions, so they are parsed here with R's operators and precedence
(``?Syntax``): ``^`` is a power (``**`` is R's synonym for it), unary minus binds tighter than
``:``, ``|`` looser than ``+``, and ``~`` loosest. Names may contain dots (``total.fruits``),
non-syntactic names are backticked, ``pkg::fun`` is one name. Every node keeps the span of text it
came from, so errors can point at the offending token. :func:`deparse` spells a node the way R's
``deparse()`` does, which is how R names model-matrix columns.

>>> tree = parse("log(total.fruits) ~ I(Days^2) + (1 | a/b)")
>>> deparse(tree.left), deparse(tree.right.left)
('log(total.fruits)', 'I(Days^2)')
>>> deparse(parse("x**2 + -1:3 + f(a,b=2)"))
'x^2 + -1:3 + f(a, b = 2)'
>>> format_number(1e5), format_number(123456789.0), format_number(0.1), format_number(1e-5)
('1e+05', '123456789', '0.1', '1e-05')
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..core.exceptions import FormulaError

__all__ = ["Node", "Num", "Str", "Name", "Call", "Op", "Unary", "Paren", "parse", "deparse", "depth", "format_number",
           "pointer", "walk", "MAX_DEPTH", "MAX_PARENTHESES"]


def pointer(text: str, start: int, end: int) -> str:
    """Two lines: ``text`` and carets under ``text[start:end]``."""
    return f"\n    {text}\n    {' ' * start}{'^' * max(1, end - start)}"


@dataclass(frozen=True)
class Node:
    span: tuple[int, int] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Num(Node):
    value: float
    integer: bool = False  # written with R's L suffix


@dataclass(frozen=True)
class Str(Node):
    value: str


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[tuple[str | None, Node], ...]  # (keyword or None, value), in the order written

    @property
    def positional(self) -> list[Node]:
        return [v for k, v in self.args if k is None]

    @property
    def keywords(self) -> dict[str, Node]:
        return {k: v for k, v in self.args if k is not None}


@dataclass(frozen=True)
class Op(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Paren(Node):
    inner: Node


def walk(node: Node):
    """Every node of a tree, parents first, left to right (without recursion).

    >>> [type(n).__name__ for n in walk(parse("a + f(b)"))]
    ['Op', 'Name', 'Call', 'Name']
    """
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(_children(n)))


# ---------------------------------------------------------------------------------------- tokens
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?")
_OPERATORS = ["%", "**", "||", "&&", "==", "!=", "<=", ">=", "<-", "|", "&", "<", ">", "!", "~", "+", "-", "*", "/",
              "^", ":", "(", ")", ",", "=", "[", "]", "{", "}", "$", "@", "?"]


@dataclass(frozen=True)
class _Token:
    kind: str  # num | str | name | op | end
    text: str
    start: int
    end: int


def _is_name_start(ch: str) -> bool:
    return ch.isalpha() or ch in "._"


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "._"


def _tokenize(text: str) -> list[_Token]:
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            out.append(_Token("num", m.group(0), i, m.end()))
            i = m.end()
        elif ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise FormulaError("unterminated string in formula:" + pointer(text, i, n))
            out.append(_Token("str", text[i + 1:j].encode().decode("unicode_escape"), i, j + 1))
            i = j + 1
        elif ch == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise FormulaError("unterminated backtick name in formula:" + pointer(text, i, n))
            out.append(_Token("name", text[i + 1:j], i, j + 1))
            i = j + 1
        elif _is_name_start(ch):
            j = i + 1
            while j < n and _is_name_char(text[j]):
                j += 1
            # pkg::name and pkg:::name are one name
            m = re.match(r":::?([A-Za-z.][A-Za-z0-9._]*)", text[j:])
            if m:
                j += m.end()
            out.append(_Token("name", text[i:j], i, j))
            i = j
        elif ch == "%":
            j = text.find("%", i + 1)
            if j < 0:
                raise FormulaError("unterminated %operator% in formula:" + pointer(text, i, n))
            out.append(_Token("op", text[i:j + 1], i, j + 1))
            i = j + 1
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    out.append(_Token("op", "^" if op == "**" else op, i, i + len(op)))
                    i += len(op)
                    break
            else:
                raise FormulaError(f"unexpected character {ch!r} in formula:" + pointer(text, i, i + 1))
    out.append(_Token("end", "", n, n))
    return out


# ---------------------------------------------------------------------------------------- parser
# binding powers from R's ?Syntax, loosest first; (left bp, right bp) for binary operators
_BINARY = {"~": (10, 11), "||": (20, 21), "|": (20, 21), "&&": (30, 31), "&": (30, 31),
           "==": (50, 51), "!=": (50, 51), "<": (50, 51), ">": (50, 51), "<=": (50, 51), ">=": (50, 51),
           "+": (60, 61), "-": (60, 61), "*": (70, 71), "/": (70, 71), ":": (90, 91), "^": (111, 110)}
_SPECIAL_BP = (80, 81)  # %any%
_UNARY_BP = {"~": 11, "!": 40, "-": 100, "+": 100}
_UNSUPPORTED = {"<-": "assignment", "=": "'=' outside a function call", "[": "indexing", "]": "indexing",
                "{": "braces", "}": "braces", "$": "'$'", "@": "'@'", "?": "'?'"}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.parens: list[_Token] = []  # open parentheses, to point at a whole random term

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Token) -> FormulaError:
        return FormulaError(message + ":" + pointer(self.text, tok.start, max(tok.end, tok.start + 1)))

    def fail_term(self, message: str, tok: _Token) -> FormulaError:
        """An error pointing at the parenthesised term around ``tok``."""
        if not self.parens:
            return self.fail(message, tok)
        start, depth = self.parens[-1].start, 0
        end = len(self.text)
        for t in self.tokens[self.i - 1:]:
            if t.kind == "op" and t.text == "(":
                depth += 1
            elif t.kind == "op" and t.text == ")":
                if depth == 0:
                    end = t.end
                    break
                depth -= 1
        return FormulaError(message + ":" + pointer(self.text, start, end))

    def expect(self, text: str, opening: _Token | None = None) -> _Token:
        tok = self.peek()
        if tok.kind != "op" or tok.text != text:
            if opening is not None and tok.kind == "end":
                raise self.fail(f"unbalanced '{opening.text}' in formula", opening)
            found = "the end of the formula" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected '{text}' but found {found}", tok)
        return self.take()

    def expression(self, min_bp: int = 0) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            if tok.kind != "op":
                if tok.kind != "end":
                    raise self.fail("missing operator between terms (R needs '+', '*' or ':' here)", tok)
                return left
            if tok.text in _UNSUPPORTED:
                if tok.text == "=" or tok.text in ")],":
                    return left
                raise self.fail(f"{_UNSUPPORTED[tok.text]} is not supported in a model formula", tok)
            if tok.text.startswith("%"):
                lbp, rbp = _SPECIAL_BP
            elif tok.text in _BINARY:
                lbp, rbp = _BINARY[tok.text]
            else:
                return left
            if lbp < min_bp:
                return left
            self.take()
            nxt = self.peek()
            if tok.text in ("|", "||") and (nxt.kind == "end" or nxt.text == ")"):
                raise self.fail_term("random term has no grouping factor after the bar", tok)
            if nxt.kind == "end":
                raise self.fail(f"'{tok.text}' needs something on its right", tok)
            right = self.expression(rbp)
            left = Op((left.span[0], right.span[1]), tok.text, left, right)

    def prefix(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            body = tok.text[:-1] if tok.text.endswith("L") else tok.text
            return Num((tok.start, tok.end), float(body), tok.text.endswith("L"))
        if tok.kind == "str":
            return Str((tok.start, tok.end), tok.text)
        if tok.kind == "name":
            if self.peek().kind == "op" and self.peek().text == "(":
                return self.call(tok)
            return Name((tok.start, tok.end), tok.text)
        if tok.kind == "op" and tok.text == "(":
            if self.peek().kind == "op" and self.peek().text == ")":
                raise self.fail("empty parentheses", tok)
            self.parens.append(tok)
            inner = self.expression()
            close = self.expect(")", tok)
            self.parens.pop()
            return Paren((tok.start, close.end), inner)
        if tok.kind == "op" and tok.text in _UNARY_BP:
            if self.peek().kind == "end":
                raise self.fail(f"'{tok.text}' needs something on its right", tok)
            operand = self.expression(_UNARY_BP[tok.text])
            return Unary((tok.start, operand.span[1]), tok.text, operand)
        if tok.kind == "end":
            raise self.fail("the formula ends where a term is expected", tok)
        if tok.text == ")":
            raise self.fail("unbalanced ')' in formula", tok)
        if tok.text in ("|", "||"):
            raise self.fail_term("random term has nothing before the bar (write '1' for an intercept)", tok)
        raise self.fail(f"unexpected {tok.text!r} where a term is expected", tok)

    def call(self, name: _Token) -> Call:
        opening = self.take()
        args: list[tuple[str | None, Node]] = []
        while not (self.peek().kind == "op" and self.peek().text == ")"):
            key = None
            if (self.peek().kind in ("name", "str") and self.tokens[self.i + 1].kind == "op"
                    and self.tokens[self.i + 1].text == "="):
                key = self.take().text
                self.take()
            if self.peek().kind == "end":
                raise self.fail(f"unbalanced '(' in formula (the call to {name.text}() is not closed)", opening)
            args.append((key, self.expression()))
            if self.peek().kind == "op" and self.peek().text == ",":
                self.take()
            elif not (self.peek().kind == "op" and self.peek().text == ")"):
                if self.peek().kind == "end":
                    raise self.fail(f"unbalanced '(' in formula (the call to {name.text}() is not closed)", opening)
                raise self.fail(f"expected ',' or ')' in the call to {name.text}()", self.peek())
        close = self.take()
        return Call((name.start, close.end), name.text, tuple(args))


# The evaluation of variables and parts of the term algebra walk the tree recursively: deeper
# formulas are refused, with the reason, before any of them recurses. A formula's sum of terms is
# read in loops everywhere (a thousand covariates are a chain a thousand deep), so it counts once.
MAX_PARENTHESES = 100  # levels of parentheses and calls, I(I(x)) or ((x)); R reads a few thousand
MAX_DEPTH = 400  # levels of the tree, operators too, a formula's sum of terms counting as one


def _check_nesting(p: "_Parser") -> None:
    open_parens = 0
    for tok in p.tokens:
        if tok.kind == "op" and tok.text == "(":
            open_parens += 1
            if open_parens > MAX_PARENTHESES:
                raise p.fail(f"formula nested too deeply: more than {MAX_PARENTHESES} levels of parentheses "
                             "(a call's count too)", tok)
        elif tok.kind == "op" and tok.text == ")":
            open_parens -= 1


def depth(node: Node) -> int:
    """Levels of the tree (a leaf is 1), counted without recursion; the terms of a formula's sum
    (``+`` outside any call) are one level, what a call holds counts in full.

    >>> depth(parse("a + b + log(c)")), depth(parse("I(a + b + c)"))
    (3, 4)
    """
    deepest, stack = 0, [(node, 1, False)]
    while stack:
        n, d, in_call = stack.pop()
        deepest = max(deepest, d)
        if isinstance(n, Op) and n.op == "+" and not in_call:
            stack += [(n.left, d, False), (n.right, d + 1, False)]
        else:
            stack.extend((c, d + 1, in_call or isinstance(n, Call)) for c in _children(n))
    return deepest


def parse(text: str) -> Node:
    """Parse one R expression (a whole formula, or a part of one) into a tree with spans.

    >>> parse("y ~ " + "(" * 500 + "x" + ")" * 500)
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.FormulaError: formula nested too deeply: more than 100 levels of parentheses (a call's count too):
    ...
    """
    p = _Parser(text)
    if p.peek().kind == "end":
        raise FormulaError("the formula is empty")
    _check_nesting(p)
    try:
        node = p.expression()
    except RecursionError:  # a chain of unary operators or powers thousands long
        raise FormulaError(f"formula nested too deeply: a chain of operators too long to read (at most {MAX_DEPTH} "
                           "levels)") from None
    tok = p.peek()
    if tok.kind != "end":
        if tok.text == ")":
            raise p.fail("unbalanced ')' in formula", tok)
        raise p.fail(f"unexpected {tok.text!r}", tok)
    levels = depth(node)
    if levels > MAX_DEPTH:
        raise FormulaError(f"formula nested too deeply: its expression is {levels} levels deep (at most {MAX_DEPTH}; "
                           "each operator, call and parenthesis is a level, and inside a call, such as I(), a sum of "
                           "k terms is k levels deep: make long sums terms of the formula)")
    return node


# ---------------------------------------------------------------------------------------- deparse
_SYNTACTIC = re.compile(r"^(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*(?::::?[A-Za-z.][A-Za-z0-9._]*)?$|^\.$")
_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL", "Inf",
             "NaN", "NA", "in"}
_LITERALS = {"TRUE", "FALSE", "NULL", "Inf", "NaN", "NA"}
_TIGHT = {"/", "^", ":", "%%", "%/%"}  # R deparses these without spaces


def format_number(x: float, integer: bool = False) -> str:
    """A number as R prints it with 15 significant digits: fixed or scientific, whichever is narrower.

    >>> format_number(2.0), format_number(2.5), format_number(1e8), format_number(3, integer=True)
    ('2', '2.5', '1e+08', '3L')
    """
    if integer:
        return f"{int(x)}L"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    digits = 15
    for d in range(1, 16):  # fewest significant digits that give the value to 15 digits
        if float(f"{x:.{d - 1}e}") == float(f"{x:.14e}"):
            digits = d
            break
    mantissa, exp = f"{x:.{digits - 1}e}".split("e")
    e = int(exp)
    sci = f"{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    fixed_decimals = max(0, digits - 1 - e)
    fixed = f"{x:.{fixed_decimals}f}"
    return fixed if len(fixed) <= len(sci) else sci


def quote_name(name: str) -> str:
    """A name as R deparses it: backticked when it is not syntactic.

    >>> quote_name("total.fruits"), quote_name("my var")
    ('total.fruits', '`my var`')
    """
    return name if _SYNTACTIC.match(name) and name not in _RESERVED else f"`{name}`"


def deparse(node: Node) -> str:
    """``node`` spelled as R's ``deparse()`` spells it (without recursion: a sum of a thousand
    covariates is a chain a thousand deep).

    >>> deparse(parse("y ~ (a + b)*c + I(x^2)"))
    'y ~ (a + b) * c + I(x^2)'
    """
    spelled: dict[int, str] = {}
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        n, ready = stack.pop()
        if not ready:
            stack.append((n, True))
            stack.extend((c, False) for c in _children(n) if id(c) not in spelled)
        else:
            spelled[id(n)] = _spell(n, [spelled[id(c)] for c in _children(n)])
    return spelled[id(node)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, Call):
        return [v for _, v in node.args]
    if isinstance(node, Paren):
        return [node.inner]
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, Op):
        return [node.left, node.right]
    return []


def _spell(node: Node, parts: list[str]) -> str:
    """One node's spelling, its children already spelled (``parts``, in ``_children``'s order)."""
    if isinstance(node, Num):
        return format_number(node.value, node.integer)
    if isinstance(node, Str):
        return '"' + node.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(node, Name):
        return node.id if node.id in _LITERALS else quote_name(node.id)
    if isinstance(node, Call):
        args = ", ".join((f"{quote_name(k)} = " if k is not None else "") + v for (k, _), v in zip(node.args, parts))
        return f"{quote_name(node.func)}({args})"
    if isinstance(node, Paren):
        return f"({parts[0]})"
    if isinstance(node, Unary):
        return f"{node.op}{parts[0]}"
    if isinstance(node, Op):
        left, right = parts
        # R adds parentheses when the tree's shape differs from what precedence would give
        if _needs_parens(node, node.left, "left"):
            left = f"({left})"
        if _needs_parens(node, node.right, "right"):
            right = f"({right})"
        return f"{left}{node.op}{right}" if node.op in _TIGHT else f"{left} {node.op} {right}"
    raise TypeError(f"cannot deparse {node!r}")


def _precedence(op: str) -> int:
    return _SPECIAL_BP[0] if op.startswith("%") else min(_BINARY[op])


def _needs_parens(parent: Op, child: Node, side: str) -> bool:
    if not isinstance(child, Op):
        return False
    p, c = _precedence(parent.op), _precedence(child.op)
    right_assoc = parent.op == "^"
    return c < p or (c == p and (right_assoc if side == "left" else not right_assoc))
