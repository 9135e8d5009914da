"""Bad and edge inputs: each gets a specific error naming its culprit, before any expensive work,
or a correct answer with a warning. Never a silent wrong number, a dead process, or a traceback
from inside SCIP, numpy or R.

The numerical cases (offsets, scales, exact fits) are in ``test_numerics.py``.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import hiermio as hm
from hiermio.core.exceptions import BudgetError, DataError, FormulaError, HierMIOError
from reference import simulate

PY = sys.executable


@pytest.fixture(scope="module")
def df():
    return simulate(K=8, n_per=12, n_nonzero=2, seed=0)


@pytest.fixture(scope="module")
def fitted(df):
    return hm.fit("y ~ x + (1 | g)", df, 2)


# ---------------------------------------------------------------------------------- data
def test_text_cell_in_numeric_column_is_named(df, tmp_path):
    bad = df.astype({"x": object})
    bad.loc[3, "x"] = "missing"
    with pytest.raises(DataError, match="column 'x' is mostly numbers but holds text such as 'missing'"):
        hm.fit("y ~ x + (1 | g)", bad, 2)
    # the command line: a message and a non-zero exit, no fit with p = n
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    out = subprocess.run([PY, "-m", "hiermio", "fit", "y ~ x + (1 | g)", str(path), "--budget", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "'x'" in out.stderr and "Traceback" not in out.stderr
    assert "Fixed effects" not in out.stdout


def test_more_fixed_columns_than_rows_is_refused(df):
    wide = df.head(6).assign(f=[f"l{i}" for i in range(6)])
    with pytest.raises(DataError, match="more rows than fixed-effect coefficients"):
        hm.fit("y ~ x + f + (1 | g)", wide, 1)


def test_one_row_is_refused(df):
    with pytest.raises(DataError, match="more rows than fixed-effect coefficients|single level"):
        hm.fit("y ~ x + (1 | g)", df.head(1), 1)


@pytest.mark.parametrize("column", ["x", "g", "y"])
def test_duplicated_columns_are_named(df, column):
    dup = pd.concat([df, df[[column]]], axis=1)
    with pytest.raises(DataError, match=f"several columns named '{column}'"):
        hm.fit("y ~ x + (1 | g)", dup, 2)


@pytest.mark.parametrize("make", [lambda n: pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(n), "D"),
                                  lambda n: pd.to_timedelta(np.arange(n), "D")], ids=["datetime", "timedelta"])
def test_dates_and_durations_are_named(df, make):
    with pytest.raises(DataError, match="column 't' holds dates or durations"):
        hm.fit("y ~ t + (1 | g)", df.assign(t=make(len(df))), 2)


def test_complex_response_is_refused(df):
    with pytest.raises(DataError, match="column 'y' is complex"):
        hm.fit("y ~ x + (1 | g)", df.assign(y=df.y + 1j), 2)


@pytest.mark.parametrize("column, factor, what", [("y", 1e160, "the response 'y'"), ("x", 1e200, "column 'x'"),
                                                  ("x", 1e-200, "column 'x'")])
def test_values_beyond_double_precision_are_named(df, column, factor, what):
    with pytest.raises(DataError, match=f"{what}.*(overflow|underflow) double precision"):
        hm.fit("y ~ x + (1 | g)", df.assign(**{column: df[column] * factor}), 2)


@pytest.mark.parametrize("name", ["my school", "schüle"])
def test_backticked_grouping_names(df, name):
    res = hm.fit(f"y ~ x + (1 | `{name}`)", df.assign(**{name: df.g}), 2)
    assert list(res.budgets) == [f"(1 | `{name}`)"]
    assert list(res.ranef()) == [name]  # lme4: names(ranef(fit)) == "my school"


def test_predict_with_text_covariate_is_named(df, fitted):
    with pytest.raises(DataError, match="variable 'x' .* numeric in training but is character"):
        fitted.predict(df.assign(x=df.x.astype(str)))


def test_nan_cluster_features_are_named(df, fitted):
    new = df.head(4).assign(g="new", f=[1.0, np.nan, 2.0, 3.0])
    with pytest.raises(DataError, match=r"cluster_features column\(s\) \['f'\] have missing values"):
        fitted.predict(new, new_levels="features", cluster_features=["f"])


def test_compare_scores_test_rows_with_the_training_design(df):
    """A category the training rows lack once shifted the dummy columns of the test design."""
    data = df.assign(c=np.where(np.arange(len(df)) % 3 == 0, "R", np.where(np.arange(len(df)) % 3 == 1, "P", "Q")))
    train, test = data[data.c != "R"], data[data.c == "R"]
    with pytest.raises(DataError, match=r"level\(s\) \['R'\] of 'c'"):
        hm.compare("y ~ x + c + (1 | g)", train, test=test, methods=["ols", "mio"], budget=2)


# ---------------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("formula, message", [
    ("y ~ x | g", "a random term must be in parentheses"),
    ("y ~ x +", "'\\+' needs something on its right"),
    ("y ~ x + (1 | g) + (1 | g)", "both give grouping factor 'g' the column '\\(Intercept\\)'"),
    ("y ~ x + (1 | g) + (1 + x | g)", "both give grouping factor 'g' the column '\\(Intercept\\)'"),
])
def test_bad_formulas_point_at_the_culprit(df, formula, message):
    with pytest.raises(FormulaError, match=message):
        hm.fit(formula, df, 2)


@pytest.mark.parametrize("formula", [3, None, ["y ~ x"]])
def test_formula_must_be_a_string(df, formula):
    with pytest.raises(FormulaError, match="formula must be a string"):
        hm.fit(formula, df, 2)


# ---------------------------------------------------------------------------------- options
BAD_OPTIONS = [
    (dict(seed=-1), "seed must be in 0..2147483647, got -1"),
    (dict(seed=2**40), "seed must be in 0..2147483647"),
    (dict(threads="two"), "threads must be a whole number, got 'two'"),
    (dict(ridge=1e-8), "ridge=1e-08 is below 1e-06"),
    (dict(ridge=1e-21), "ridge=1e-21 is below 1e-06"),
    (dict(ridge=float("nan")), "ridge must be a finite number"),
    (dict(time_limit=0), "time_limit must be a finite number above 0"),
    (dict(gap=1.0), "gap must be a finite number in \\[0, 1\\)"),
    (dict(certify="yes"), "certify must be True or False"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_every_entry_point_validates_options_the_same_way(df, fitted, options, message, monkeypatch):
    """fit, path, cv, stability, bootstrap, compare and HierMIO share one validation, run before any fit."""
    import importlib

    calls = []
    for name in ("hiermio.fitting.api", "hiermio.workflow.path"):
        module = importlib.import_module(name)  # the search stage, wherever it is called from
        monkeypatch.setattr(module, "optimize", lambda *a, **k: calls.append(1))
    entry_points = [
        lambda: hm.fit("y ~ x + (1 | g)", df, 2, **options),
        lambda: hm.path("y ~ x + (1 | g)", df, [1, 2], **options),
        lambda: hm.cv("y ~ x + (1 | g)", df, [1, 2], folds=2, **options),
        lambda: hm.stability("y ~ x + (1 | g)", df, 2, B=2, **options),
        lambda: hm.bootstrap(fitted, B=2, **options),
        lambda: hm.compare("y ~ x + (1 | g)", df, methods=["ols", "mio"], budget=2, **options),
        lambda: hm.HierMIO("y ~ x + (1 | g)", budget=2, **{k: v for k, v in options.items()
                                                           if k in ("ridge", "seed", "time_limit", "gap")}).fit(df),
    ]
    for call in entry_points:
        if call is entry_points[-1] and not any(k in options for k in ("ridge", "seed", "time_limit", "gap")):
            continue  # HierMIO's parameters are those four
        with pytest.raises(HierMIOError, match=message):
            call()
    assert calls == []


def test_misspelt_option_fails_before_any_fold(df, monkeypatch):
    import hiermio.workflow.validation

    monkeypatch.setattr(hiermio.workflow.validation, "path", lambda *a, **k: pytest.fail("a fold ran"))
    with pytest.raises(HierMIOError, match="cv\\(\\) got an unknown option 'ridg' \\(did you mean 'ridge'\\?\\)"):
        hm.cv("y ~ x + (1 | g)", df, [0, 1], ridg=0.2)
    with pytest.raises(HierMIOError, match="path\\(\\) got an unknown option 'time_limt'"):
        hm.path("y ~ x + (1 | g)", df, [0, 1], time_limt=3)


@pytest.mark.parametrize("call, error, message", [
    (lambda d: hm.path("y ~ x + (1 | g)", d, budgets="all"), BudgetError, "budgets as a list of whole numbers"),
    (lambda d: hm.path("y ~ x + (1 | g)", d, budgets=[1.5, 2]), HierMIOError, "must be a whole number, got 1.5"),
    (lambda d: hm.cv("y ~ x + (1 | g)", d, budgets=[0.5, 1]), HierMIOError, "must be a whole number, got 0.5"),
    (lambda d: hm.cv("y ~ x + (1 | g)", d, [0, 1], folds=1), HierMIOError, "folds must be at least 2, got 1"),
    (lambda d: hm.cv("y ~ x + (1 | g)", d, [0, 1], folds=20, scheme="cluster"), HierMIOError,
     "folds=20 needs at least 20 levels, and it has 8"),
    (lambda d: hm.cv("y ~ x + (1 | g)", d, [0, 1], rule="best"), HierMIOError, "rule must be one of"),
    (lambda d: hm.stability("y ~ x + (1 | g)", d, 2, B=3), HierMIOError, "B must be an even number"),
    (lambda d: hm.compare("y ~ x + (1 | g)", d, methods="ols"), HierMIOError, "methods must be a list"),
    (lambda d: hm.compare("y ~ x + (1 | g)", d, methods=["ols", "mio"], budget=-1), BudgetError,
     "budget -1 for random term \\(1 \\| g\\) is out of range: it must be at least 0"),
])
def test_bad_loop_arguments_are_named(df, call, error, message):
    with pytest.raises(error, match=message):
        call(df)


def test_re_form_other_than_none_or_population_is_refused(df, fitted):
    with pytest.raises(HierMIOError, match="re_form must be None .* got 'garbage'"):
        fitted.predict(df, re_form="garbage")
    assert np.allclose(fitted.predict(df, re_form="~0"), fitted.predict(df, re_form=np.nan))


def test_cli_given_a_directory_or_a_bad_budget(tmp_path, df):
    out = subprocess.run([PY, "-m", "hiermio", "fit", "y ~ x + (1 | g)", str(tmp_path), "--budget", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "is a directory" in out.stderr and "Traceback" not in out.stderr
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    for args, message in ((["--budget", "2.5"], "--budget must be a whole number"),
                          (["--budget", "2", "--seed", "-1"], "seed must be in 0..")):
        out = subprocess.run([PY, "-m", "hiermio", "fit", "y ~ x + (1 | g)", str(path), *args],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------- warnings
def test_gap_above_the_requested_one_warns_and_is_listed():
    df = simulate(K=150, n_per=4, n_nonzero=40, effect=0.35, seed=2)
    with pytest.warns(hm.HierMIOWarning, match="time limit .* proven gap of .* above the requested"):
        res = hm.fit("y ~ x + (1 | g)", df, budget=40, ridge=0.05, time_limit=0.3, gap=0.0, enumerate_below=0,
                     search="outer_approximation")
    assert res.certificate.gap > 0
    assert any("above the requested" in w for w in res.warnings)


def test_certified_fit_has_no_warnings(fitted):
    assert fitted.certificate.gap <= 1e-4 and fitted.warnings == []


def test_dropped_rows_and_columns_are_warned_and_listed(df):
    holes = df.assign(x=np.where(np.arange(len(df)) < 3, np.nan, df.x), x2=2 * df.x)
    with pytest.warns(hm.HierMIOWarning) as record:
        res = hm.fit("y ~ x + x2 + (1 | g)", holes, 2)
    messages = [str(w.message) for w in record]
    assert any("3 of 96 rows dropped for missing values in 'x' (3)" in m for m in messages)
    assert any("dropping 1 column" in m and "'x2'" in m for m in messages)
    assert len(res.warnings) == 2


def test_path_budget_above_the_levels_is_capped_with_a_warning(df):
    with pytest.warns(hm.HierMIOWarning, match=r"budget\(s\) \[20\] exceed the 8 units of \(1 \| g\): fitted at 8"):
        p = hm.path("y ~ x + (1 | g)", df, [2, 20])
    assert p.fits[20].n_nonzero <= 8


# ---------------------------------------------------------------------------------- R and interrupts
def test_broken_r_raises_and_the_process_lives(tmp_path):
    script = textwrap.dedent("""
        import hiermio as hm
        df = hm.load_dataset("sleepstudy")
        try:
            hm.lmer("Reaction ~ Days + (1 | Subject)", df)
        except hm.RNotAvailableError as exc:
            print("RNotAvailableError:", exc)
        cmp = hm.compare("Reaction ~ Days + (1 | Subject)", df, methods=["lmer", "ols"])
        print("compare lmer status:", cmp.table.loc["lmer", "status"])
        print("alive")
    """)
    env = {**os.environ, "R_HOME": "/nonexistent"}
    out = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "RNotAvailableError: R with lme4 does not start in this environment with R_HOME='/nonexistent'" in out.stdout
    assert "compare lmer status: failed" in out.stdout and "alive" in out.stdout
    demo = subprocess.run([PY, "-m", "hiermio", "demo", "--budget", "2"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert demo.returncode == 0 and "lme4 side of the comparison skipped" in demo.stdout


INTERRUPTIBLE = textwrap.dedent("""
    import sys, numpy as np, pandas as pd, hiermio as hm
    rng = np.random.default_rng(2)
    K, n_per = 300, 4
    df = pd.DataFrame({"g": np.repeat(np.arange(K), n_per), "x": rng.normal(size=K * n_per)})
    eff = np.where(rng.random(K) < 0.3, rng.normal(0, 0.5, K), 0)
    df["y"] = df.x + eff[df.g] + rng.normal(size=K * n_per)
    print("ready", flush=True)
    try:
        {call}
        print("finished", flush=True)
    except hm.Interrupted as e:
        done = None if e.result is None else getattr(e.result, "table", None)
        print("INTERRUPTED", None if done is None else done.index.tolist(), flush=True)
        sys.exit(3)
""")


@pytest.mark.parametrize("call, finished", [
    # budget 1 has 300 supports (enumerated at once); budget 60 is a long search in SCIP
    ('hm.path("y ~ x + (1 | g)", df, budgets=[1, 60, 70, 80, 90], ridge=0.05, time_limit=30, gap=0.0, '
     'search="outer_approximation")', "[1]"),
    # a user's own loop of fits stops too: Interrupted is a KeyboardInterrupt
    ('[hm.fit("y ~ x + (1 | g)", df, b, ridge=0.05, time_limit=30, gap=0.0, search="outer_approximation") '
     'for b in (60, 70, 80)]', "None"),
    ('hm.cv("y ~ x + (1 | g)", df, [60, 70], folds=3, certify=True, ridge=0.05, time_limit=30, gap=0.0, '
     'search="outer_approximation")', "None"),
    ('hm.stability("y ~ x + (1 | g)", df, 60, B=4, certify=True, ridge=0.05, time_limit=30, gap=0.0, '
     'search="outer_approximation")', "None"),
])
def test_ctrl_c_stops_the_whole_loop(call, finished):
    proc = subprocess.Popen([PY, "-c", INTERRUPTIBLE.replace("{call}", call)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(3)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.perf_counter() - t0 < 2.0
    assert proc.returncode == 3, err
    assert f"INTERRUPTED {finished}" in out


def test_interrupted_fit_keeps_its_best_support(monkeypatch):
    """What Ctrl-C inside SCIP leaves: the best support, its proven gap, a warning, and an exception
    that stops the caller."""
    import hiermio.fitting.api
    from hiermio.solve.oa import solve as real_solve

    def interrupted_solve(problem, starts, options, **kwargs):
        support, cert = real_solve(problem, starts, options, **kwargs)
        cert.status = "interrupted"
        return support, cert

    monkeypatch.setattr(hiermio.fitting.api, "solve", interrupted_solve)
    df = simulate(K=40, n_per=5, n_nonzero=6, seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(hm.Interrupted) as info:
            hm.fit("y ~ x + (1 | g)", df, 6, enumerate_below=0)
    res = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert res.certificate.status == "interrupted" and res.n_nonzero == 6
    assert any("interrupted" in w for w in res.warnings)
    assert any("interrupted" in str(w.message) for w in caught)


def test_ridge_at_its_floor_certifies_a_small_problem_through_scip():
    """ridge=1e-8 once spent the whole time limit (12,449 cuts, 1 node) on six levels."""
    df = simulate(K=6, n_per=10, n_nonzero=2, seed=1)
    res = hm.fit("y ~ x + (1 | g)", df, 2, ridge=1e-6, time_limit=20, enumerate_below=0, search="outer_approximation")
    assert res.certificate.status == "optimal" and res.certificate.solver.startswith("SCIP")
    enum = hm.fit("y ~ x + (1 | g)", df, 2, ridge=1e-6)
    assert enum.certificate.primal == pytest.approx(res.certificate.primal, rel=1e-9)
    fixed = hm.fit("y ~ x + (1 | g)", df, 2, ridge=1e-6, time_limit=20, enumerate_below=0, gap=0.0)
    assert fixed.certificate.solver == "branch-and-bound on the fixed effects"
    assert fixed.certificate.primal == pytest.approx(enum.certificate.primal, rel=1e-9)
