"""Formula parity with lme4: the same rows, fixed columns, Z, names and levels as ``lme4::lFormula``.

Each case is an R data set (as R holds it) and a formula written in R's syntax. The Python side
gets the data through :func:`hiermio.comparisons.lme4.from_r` (factors as categoricals, ordered kept) and builds
its design; lme4 builds its own in R. Independent truth: lme4 itself.
"""

from __future__ import annotations

import numpy as np
import pytest

import hiermio as hm
from hiermio.comparisons.lme4 import from_r, lformula, r_available
from hiermio.formula.design import random_design_matrix

pytestmark = [pytest.mark.needs_r, pytest.mark.skipif(not r_available(), reason="R with lme4 and rpy2 is not available")]

SLEEP = "lme4::sleepstudy"
CASES = [
    # intercepts, correlated and uncorrelated slopes
    (SLEEP, "Reaction ~ Days + (Days | Subject)"),
    (SLEEP, "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
    (SLEEP, "Reaction ~ Days + (Days || Subject)"),
    (SLEEP, "Reaction ~ 1 + (1 | Subject)"),
    # transforms: poly, I() with ^, scale, math functions, splines, factor(), ordered()
    (SLEEP, "Reaction ~ poly(Days, 2) + (1 | Subject)"),
    (SLEEP, "Reaction ~ poly(Days, 3, raw = TRUE) + (1 | Subject)"),
    (SLEEP, "Reaction ~ Days + I(Days^2) + (1 | Subject)"),
    (SLEEP, "Reaction ~ scale(Days) + (scale(Days) | Subject)"),
    (SLEEP, "log(Reaction) ~ sqrt(Days) + exp(Days/10) + (1 | Subject)"),
    (SLEEP, "Reaction ~ ns(Days, df = 3) + (1 | Subject)"),
    (SLEEP, "Reaction ~ bs(Days, df = 4) + (1 | Subject)"),
    (SLEEP, "Reaction ~ factor(Days) + (1 | Subject)"),
    (SLEEP, "Reaction ~ 0 + factor(Days) + (1 | Subject)"),
    (SLEEP, "Reaction ~ Days - 1 + (1 | Subject)"),
    (SLEEP, "Reaction ~ ordered(Days %/% 3) + (1 | Subject)"),
    (SLEEP, "Reaction ~ I(Days > 4) + log2(Days + 1) + (1 | Subject)"),
    # offsets
    (SLEEP, "Reaction ~ Days + offset(2 * Days) + (1 | Subject)"),
    # nested, crossed, interactions of grouping factors
    ("lme4::Pastes", "strength ~ 1 + (1 | batch/cask)"),
    ("lme4::Pastes", "strength ~ (1 | batch) + (1 | cask:batch)"),
    ("lme4::Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("lme4::Dyestuff", "Yield ~ 1 + (1 | Batch)"),
    # ordered factors (polynomial contrasts), interactions, recipes
    ("lme4::cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
    ("lme4::cake", "angle ~ recipe + temp + (1 | replicate)"),
    ("lme4::cake", "angle ~ recipe * poly(temp, 2) + (1 | replicate)"),
    # dotted names, arithmetic in the response
    ("lme4::Arabidopsis", "total.fruits ~ nutrient + amd + (1 | popu) + (1 | gen)"),
    ("lme4::Arabidopsis", "log(1 + total.fruits) ~ factor(nutrient) * amd + rack + status + (1 | reg) + (1 | popu)"),
    ("lme4::cbpp", "incidence/size ~ period + (1 | herd)"),
    ("lme4::grouseticks", "log(1 + TICKS) ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)"),
    # nlme's grouped data: ordered grouping factors, factor slopes
    ("nlme::Orthodont", "distance ~ age * Sex + (age | Subject)"),
    ("nlme::Oats", "yield ~ nitro * Variety + (1 | Block/Variety)"),
    ("nlme::Oats", "yield ~ Variety/nitro + (1 | Block)"),
    ("nlme::Oats", "yield ~ (Variety + nitro)^2 + (1 | Block)"),
    ("nlme::Oats", "yield ~ nitro %in% Variety + as.numeric(Variety) + (1 | Block)"),
    ("nlme::Machines", "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)"),
    ("nlme::Machines", "score ~ Machine + (0 + Machine | Worker)"),
    ("nlme::ergoStool", "effort ~ Type + (1 | Subject)"),
    ("nlme::ergoStool", "effort ~ relevel(Type, ref = \"T2\") + (1 | Subject)"),
    ("nlme::BodyWeight", "weight ~ Time * Diet + (Time | Rat)"),
    ("datasets::Orange", "circumference ~ log10(age) + (1 | Tree)"),
    ("nlme::Pixel", "pixel ~ day + I(day^2) + (day | Dog) + (1 | Dog:Side)"),
    # mlmRev: collinear columns (dropped with lme4's message), crossed, NAs
    ("mlmRev::Exam", "normexam ~ standLRT + sex + (1 | school)"),
    ("mlmRev::Exam", "normexam ~ standLRT + schgend + type + (standLRT | school)"),
    ("mlmRev::Exam", "normexam ~ standLRT * sex + schavg + (1 | school)"),
    ("mlmRev::Hsb82", "mAch ~ ses * minrty + (ses * minrty || school)"),
    ("mlmRev::Oxboys", "height ~ age + I(age^2) + (age | Subject)"),
    ("mlmRev::ScotsSec", "attain ~ verbal * sex + (1 | primary) + (1 | second)"),
    ("mlmRev::Gcsemv", "written ~ gender + course + (1 | school)"),
    # R's coding rule: indicators where the marginal term is absent; sum and Helmert contrasts
    ("nlme::Oats", "yield ~ nitro + nitro:Variety + (1 | Block)"),
    ("nlme::Oats", "yield ~ 0 + nitro + nitro:Variety + (1 | Block)"),
    ("nlme::Machines", "score ~ C(Machine, sum) + (Machine | Worker)"),
    ("nlme::Machines", "score ~ C(Machine, helmert) + (1 | Worker)"),
    (SLEEP, "Reaction ~ poly(Days, 1) + offset(log(Days + 1)) + (1 | Subject)"),
    # three-level nesting, and an interaction grouping with combinations that never occur
    ("transform(rbind(lme4::Pastes, lme4::Pastes), part = rep(1:2, 60))", "strength ~ 1 + (1 | batch/cask/part)"),
    ("mlmRev::Exam", "normexam ~ standLRT + (1 | school:sex)"),
    # unused levels (subset keeps them), integer / character grouping, logical and odd names
    ("subset(lme4::sleepstudy, Subject != '308' & Days < 8)", "Reaction ~ Days + (Days | Subject)"),
    ("subset(nlme::Machines, Machine != 'C')", "score ~ Machine + (1 | Worker)"),
    ("transform(lme4::sleepstudy, Subject = as.integer(as.character(Subject)))", "Reaction ~ Days + (1 | Subject)"),
    ("transform(lme4::sleepstudy, Subject = paste0(ifelse(as.integer(Subject) %% 2 == 0, 'S', 's'), Subject))",
     "Reaction ~ Days + (1 | Subject)"),
    ("transform(lme4::sleepstudy, late = Days > 4)", "Reaction ~ late + Days + (1 | Subject)"),
    ("setNames(lme4::sleepstudy, c('Reaction', 'days since', 'Subject'))", "Reaction ~ `days since` + (1 | Subject)"),
    ("within(lme4::sleepstudy, { Reaction[c(3, 50)] <- NA; Days[7] <- NA })", "Reaction ~ Days + (Days | Subject)"),
]


def _ids(case):
    return f"{case[0].split('::')[-1][:30]}: {case[1]}"


@pytest.mark.parametrize("data_expr, formula", CASES, ids=[_ids(c) for c in CASES])
def test_design_equals_lme4s(data_expr, formula):
    ref = lformula(formula, data_expr)
    df = from_r(data_expr)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = hm.build_design(formula, df)
    # the same rows
    np.testing.assert_array_equal(np.flatnonzero(df.index.isin(d.rows)), ref.rows)
    # the same fixed columns, names and values (collinear columns dropped as lme4 drops them)
    assert list(d.fixed_names) == list(ref.X.columns)
    np.testing.assert_allclose(d.X, ref.X.to_numpy(), rtol=1e-9, atol=1e-9)
    dropped = any("rank deficient" in m for m in ref.messages)
    assert bool(d.dropped_columns) == dropped
    if dropped:
        assert any("rank deficient so dropping" in str(w.message) for w in caught)
    # the same grouping factors, levels and coefficient names
    ours_cnms = sorted((t.term.group, list(t.coef_names)) for t in d.terms)
    assert ours_cnms == sorted(ref.cnms)
    for t in d.terms:
        assert list(t.level_strings) == ref.flist[t.term.group], t.term.group
    # Z equal up to column order
    keys = [(t.term.group, lv, c) for t in d.terms for lv in t.level_strings for c in t.coef_names]
    position = {k: j for j, k in enumerate(ref.z_keys)}
    assert sorted(keys) == sorted(ref.z_keys)
    Z = random_design_matrix(d).tocsc()
    order = np.array([position[k] for k in keys])
    diff = abs(Z - ref.Z[:, order])
    assert (diff.max() if diff.nnz else 0.0) < 1e-9
    # offsets
    if ref.offset is not None:
        np.testing.assert_allclose(d.offset, ref.offset, rtol=1e-12)


@pytest.mark.parametrize("weights, offset", [("w", None), (None, "off"), ("w", "off")])
def test_weights_and_offset_arguments_equal_lme4s(weights, offset):
    df = hm.load_dataset("sleepstudy")
    rng = np.random.default_rng(0)
    df = df.assign(w=rng.uniform(0.5, 2, len(df)), off=rng.normal(size=len(df)))
    df.loc[[4, 9], "w"] = np.nan
    ref = lformula("Reaction ~ Days + (Days | Subject)", df, weights=None if weights is None else df[weights].to_numpy(),
                   offset=None if offset is None else df[offset].to_numpy())
    d = hm.build_design("Reaction ~ Days + (Days | Subject)", df, weights=weights, offset=offset)
    np.testing.assert_array_equal(np.flatnonzero(df.index.isin(d.rows)), ref.rows)
    if weights:
        np.testing.assert_allclose(d.weights, ref.weights)
    if offset:
        np.testing.assert_allclose(d.offset, ref.offset)


def test_parity_suite_is_broad():
    assert len(CASES) >= 40


def test_lmer_and_mio_ranef_join_by_level():
    df = hm.load_dataset("sleepstudy")  # Subject as integers
    ref = hm.lmer("Reaction ~ Days + (1 | Subject)", df)
    mio = hm.fit("Reaction ~ Days + (1 | Subject)", df, budget=18, ridge=1e-6)
    joined = mio.ranef()["Subject"].join(ref.ranef()["Subject"], rsuffix="_lme4")
    assert joined.notna().all().all() and len(joined) == 18
    # integer ids and their spelling as text are the same level, as in R
    new = df.head(3).assign(Subject=df.Subject.head(3).astype(str))
    np.testing.assert_allclose(mio.predict(new), mio.predict(df.head(3)))
    assert list(ref.fixef().index) == list(mio.fixef().index)


def test_weighted_lmer_equals_lme4_called_in_r():
    from hiermio.comparisons.lme4 import _r_session

    df = hm.load_dataset("sleepstudy").assign(w=lambda d: 1.0 + (d.Days % 3))
    ours = hm.lmer("Reaction ~ Days + (Days | Subject)", df, weights="w")
    with _r_session() as R:
        fe = R["ro"].r("lme4::fixef(lme4::lmer(Reaction ~ Days + (Days | Subject), "
                       "transform(lme4::sleepstudy, w = 1 + Days %% 3), weights = w))")
        expected = np.asarray(fe, dtype=float)
    np.testing.assert_allclose(ours.fixef().to_numpy(), expected, rtol=1e-6)
    unweighted = hm.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert not np.allclose(unweighted.fixef().to_numpy(), expected, rtol=1e-6)
