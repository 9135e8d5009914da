import re

import pytest

from hiermio import FormulaError, parse_formula


@pytest.mark.parametrize(
    "text, fixed, labels",
    [
        ("Reaction ~ Days + (Days | Subject)", "Days", ["(Days | Subject)"]),
        ("y ~ x1 + x2 + (1 | g)", "x1 + x2", ["(1 | g)"]),
        ("y ~ (0 + z | g) + x", "x", ["(0 + z | g)"]),
        ("y ~ x + (1 + z || g)", "x", ["(1 | g)", "(0 + z | g)"]),
        ("y ~ x + (0 + z || g)", "x", ["(0 + z | g)"]),
        ("y ~ x + (1 | a) + (1 | b)", "x", ["(1 | a)", "(1 | b)"]),
        ("y ~ x + (1 | a/b)", "x", ["(1 | a)", "(1 | b:a)"]),  # lme4 names the nested factor b:a
        ("y ~ x + (1 | a:b)", "x", ["(1 | a:b)"]),
        ("y ~ C(x) + np.log(w) + x:w + (1|g)", "C(x) + np.log(w) + x:w", ["(1 | g)"]),
        ("y ~ (1 | g)", "1", ["(1 | g)"]),
        ("y ~ 0 + x", "0 + x", []),
    ],
)
def test_parse_formula_splits_fixed_and_random(text, fixed, labels):
    f = parse_formula(text)
    assert f.fixed == fixed
    assert [t.label for t in f.random] == labels


def test_function_call_parentheses_are_fixed_part():
    f = parse_formula("y ~ I(x + 1) + log(z) + (1 | g)")
    assert f.fixed == "I(x + 1) + log(z)"
    assert f.groups == ("g",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("y ~ x + (1 | )", "no grouping factor"),
        ("y ~ x + ( | g)", "nothing before the bar"),
        ("y ~ (1 | g | h)", "exactly one bar"),
        ("y ~ x + (1 | g", "unbalanced '('"),
        ("y ~ x + 1 | g)", "unbalanced ')'"),
        ("y ~ (1 | g + h)", "'g + h'"),
        ("y x", "exactly one '~'"),
        ("~ x", "no response"),
    ],
)
def test_bad_bar_syntax_points_at_the_offending_part(text, message):
    with pytest.raises(FormulaError, match=re.escape(message)) as info:
        parse_formula(text)
    if "(" in text and "~" in text:
        assert "^" in str(info.value) or "'" in str(info.value)


def test_pointer_marks_the_random_term():
    with pytest.raises(FormulaError) as info:
        parse_formula("y ~ x + (1 | )")
    lines = str(info.value).splitlines()
    caret = lines[-1]
    start = caret.index("^")
    assert lines[-2][start:].startswith("(1 | )")
