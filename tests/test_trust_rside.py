"""Issue #25, case 10 (Python side): lme4's re.form in predict, and compare's cv with weights.

The truths are computed by hand from the fit's own fixef() and ranef(): with a budget equal to
every term's number of levels the effects are unrestricted, and re.form only chooses which of
them enter X beta + sum_k Z_k gamma_k.
"""

import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from hiermio.core.exceptions import HierMIOError
from hiermio.comparisons.lme4 import r_available

FORMULA = "Reaction ~ Days + (Days | Subject) + (1 | g)"


@pytest.fixture(scope="module")
def data():
    df = hm.load_dataset("sleepstudy")
    return df.assign(g=pd.Categorical(np.arange(len(df)) % 6 + 1))


@pytest.fixture(scope="module")
def fit(data):
    return hm.fit(FORMULA, data, budget={"(Days | Subject)": 18, "(1 | g)": 6}, progress=False)


def _by_hand(fit, rows, subject=(), g=False):
    """X beta plus the chosen coefficients' Z gamma, from fixef() and ranef()."""
    fe, re = fit.fixef(), fit.ranef()
    days = rows.Days.to_numpy()
    out = fe["(Intercept)"] + fe["Days"] * days
    s = re["Subject"].loc[rows.Subject.to_numpy()]
    if "(Intercept)" in subject:
        out = out + s["(Intercept)"].to_numpy()
    if "Days" in subject:
        out = out + s["Days"].to_numpy() * days
    if g:
        out = out + re["g"].loc[rows.g.to_numpy(), "(Intercept)"].to_numpy()
    return out


@pytest.mark.parametrize("re_form, subject, g", [
    ("~(1 | Subject)", ("(Intercept)",), False),  # lme4 keeps the Subject intercepts only
    ("~(Days | Subject)", ("(Intercept)", "Days"), False),
    ("~ (1 | g)", (), True),
    ("~ (1 | Subject) + (1 | g)", ("(Intercept)",), True),
    ("~ (Days | Subject) + (1 | g)", ("(Intercept)", "Days"), True),
    (None, ("(Intercept)", "Days"), True),
])
def test_re_form_keeps_only_the_terms_it_names(fit, data, re_form, subject, g):
    rows = data.iloc[[0, 49, 99, 150]]
    np.testing.assert_allclose(fit.predict(rows, re_form=re_form).to_numpy(), _by_hand(fit, rows, subject, g),
                               rtol=1e-12)


@pytest.mark.parametrize("re_form", ["~0", "~ 0", "NA", np.nan, False])
def test_population_spellings(fit, data, re_form):
    rows = data.iloc[[0, 49, 99]]
    np.testing.assert_allclose(fit.predict(rows, re_form=re_form).to_numpy(), _by_hand(fit, rows), rtol=1e-12)


def test_re_form_without_newdata_predicts_the_training_rows(fit, data):
    # it used to return fitted() whatever re_form said
    np.testing.assert_allclose(fit.predict(re_form="~0").to_numpy(), _by_hand(fit, data), rtol=1e-12)
    np.testing.assert_allclose(fit.predict(re_form="~(1 | g)").to_numpy(), _by_hand(fit, data, g=True), rtol=1e-12)


def test_a_term_left_out_needs_neither_its_columns_nor_known_levels(fit, data):
    rows = data.iloc[[0, 49]].assign(g=[99, 98])  # g levels unseen in training
    np.testing.assert_allclose(fit.predict(rows, re_form="~(Days | Subject)").to_numpy(),
                               _by_hand(fit, data.iloc[[0, 49]], ("(Intercept)", "Days")), rtol=1e-12)


@pytest.mark.parametrize("re_form, message", [
    ("~(1 | zz)", r"re_form='~\(1 \| zz\)' names the grouping factor 'zz', which is not in the model"),
    ("~(0 + Reaction | Subject)", r"term \(0 \+ Reaction \| Subject\) has coefficient\(s\) \['Reaction'\]"),
    ("~ Days", r"re_form must be None .* got '~ Days' \(it has the fixed term\(s\) 'Days'"),
    ("(1 | g)", r"re_form must be None .* got '\(1 \| g\)'"),
    ("Reaction ~ (1 | g)", r"re_form must be None .* got 'Reaction ~ \(1 \| g\)'"),
    (True, r"re_form must be None .* got True"),
    (1, r"re_form must be None .* got 1"),
])
def test_other_re_forms_are_refused_by_name(fit, data, re_form, message):
    with pytest.raises(HierMIOError, match=message):
        fit.predict(data.head(2), re_form=re_form)


@pytest.mark.skipif(not r_available(), reason="R with lme4 and rpy2 not installed")
def test_lmer_predict_passes_re_form_to_lme4(data):
    ref = hm.lmer(FORMULA, data)
    rows = data.iloc[[0, 49, 99]]
    fe, re = ref.fixef(), ref.ranef()
    by_hand = (fe["(Intercept)"] + fe["Days"] * rows.Days.to_numpy()
               + re["Subject"].loc[rows.Subject.to_numpy(), "(Intercept)"].to_numpy())
    # lme4's own meaning of re.form = ~(1 | Subject): the Subject intercepts only
    np.testing.assert_allclose(ref.predict(rows, re_form="~(1 | Subject)").to_numpy(), by_hand, rtol=1e-10)


def test_compare_chooses_the_budget_by_weighted_cv(data):
    w = np.random.default_rng(1).uniform(0.05, 1, len(data)) ** 3
    df = data.assign(w=w)
    formula = "Reaction ~ Days + (1 | Subject)"
    weighted = hm.cv(formula, df, weights="w", progress=False).best_budget_
    assert weighted != hm.cv(formula, df, progress=False).best_budget_  # the weights matter here
    for weights in ("w", w):
        cmp = hm.compare(formula, df, methods=["mio"], budget="cv", weights=weights)
        assert f"budget {weighted} chosen" in cmp.table.messages.iloc[0][0]
