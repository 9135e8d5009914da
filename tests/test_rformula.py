"""R's formula language from Python, against closed forms (no R needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hiermio as hm


@pytest.fixture()
def sleep():
    return hm.load_dataset("sleepstudy")  # Days stored as integers


def test_power_is_a_power_on_integer_columns(sleep):
    assert sleep.Days.dtype.kind == "i"
    d = hm.build_design("Reaction ~ I(Days^2) + I(Days**2) + (1 | Subject)", sleep)
    # the same variable twice (R spells ** as ^): one column, not Days XOR 2
    assert d.fixed_names == ("(Intercept)", "I(Days^2)")
    np.testing.assert_array_equal(d.X[:, 1], sleep.Days.to_numpy() ** 2)


def test_dotted_and_backticked_names_in_response_and_fixed_part(sleep):
    df = sleep.rename(columns={"Reaction": "reaction.time", "Days": "days since"})
    d = hm.build_design("log(reaction.time) ~ `days since` + (1 | Subject)", df)
    assert d.fixed_names == ("(Intercept)", "`days since`")
    np.testing.assert_allclose(d.y, np.log(df["reaction.time"]))


def test_unused_levels_are_dropped_everywhere(sleep):
    df = sleep.assign(Subject=pd.Categorical(sleep.Subject), grp=pd.Categorical(sleep.Days % 3))
    sub = df[(df.Subject != 308) & (df.grp != 2)]
    d = hm.build_design("Reaction ~ grp + (1 | Subject)", sub)
    assert d.fixed_names == ("(Intercept)", "grp1")
    assert d.terms[0].n_levels == 17 and 308 not in list(d.terms[0].levels)


def test_ordered_factors_get_polynomial_contrasts(sleep):
    df = sleep.assign(stage=pd.Categorical(sleep.Days // 4, ordered=True))
    d = hm.build_design("Reaction ~ stage + (1 | Subject)", df)
    assert d.fixed_names == ("(Intercept)", "stage.L", "stage.Q")
    L = d.X[:, 1]
    np.testing.assert_allclose(sorted(set(np.round(L, 12))), np.round([-1 / np.sqrt(2), 0, 1 / np.sqrt(2)], 12))


def test_double_bar_gives_one_term_per_term_label():
    f = hm.parse_formula("y ~ ses * minrty + (ses * minrty || school)")
    assert [t.label for t in f.random] == ["(1 | school)", "(0 + ses | school)", "(0 + minrty | school)",
                                           "(0 + ses:minrty | school)"]


def test_scale_and_poly_use_the_training_parameters_for_new_rows(sleep):
    fit = hm.fit("Reaction ~ scale(Days) + poly(Days, 2) + (1 | Subject)", sleep, budget=2)
    one = sleep.head(1)
    x = (one.Days.to_numpy() - sleep.Days.mean()) / sleep.Days.std(ddof=1)
    X_one = fit.design.fixed_matrix(one)
    np.testing.assert_allclose(X_one[0, 1], x[0])
    np.testing.assert_allclose(X_one[0, 2:], fit.design.X[0, 2:], rtol=1e-12)


@pytest.mark.parametrize("formula, message", [
    ("y ~ cut(x, 3) + (1 | g)", r"function cut\(\) is not supported"),
    ("y ~ x + . + (1 | g)", r"'\.' \(all other columns\) is not supported"),
    ("y ~ x + (1 | g + h)", r"grouping factor 'g \+ h' must be a factor"),
    ("y ~ x | g", r"random term must be in parentheses"),
    ("y ~ x + I(x^2", r"unbalanced '\('"),
    ("y ~ x + 2 + (1 | g)", r"the number 2 cannot be a term"),
    ("y ~ factor(x, lvls = 1) + (1 | g)", r"factor\(\) has no argument 'lvls'"),
])
def test_unsupported_or_wrong_spellings_are_named(formula, message):
    df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 3, 4], "g": [1, 1, 2, 2], "h": [1, 2, 1, 2]})
    with pytest.raises(hm.FormulaError, match=message):
        hm.build_design(formula, df)


def test_text_in_a_numeric_column_is_named():
    df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [1, 2, "missing", 4, 5, 6], "g": [1, 1, 2, 2, 3, 3]})
    with pytest.raises(hm.DataError, match=r"column 'x' is mostly numbers but holds text such as 'missing'"):
        hm.build_design("y ~ x + (1 | g)", df)
