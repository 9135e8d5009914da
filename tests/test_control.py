"""The control object and the registries: one list of options, one default each, and
extension points that work from outside the package."""

import inspect
from dataclasses import fields

import numpy as np
import pytest

import hiermio as hm
from hiermio.cli import main
from hiermio.core.control import FitControl
from hiermio.formula.design import build_design
from hiermio.comparisons.methods import METHODS
from hiermio.fitting.newclusters import RULES, NewLevelRule, register_rule
from reference import simulate


def test_every_entry_point_has_the_control_objects_defaults():
    """Defaults are written once: fit's and HierMIO's signatures read them from FitControl."""
    fit_params = inspect.signature(hm.fit).parameters
    est_params = inspect.signature(hm.HierMIO).parameters
    for f in fields(FitControl):
        assert fit_params[f.name].default == f.default, f.name
        if f.name in est_params:
            assert est_params[f.name].default == f.default, f.name


def test_control_validates_on_construction_and_update():
    c = FitControl(ridge=2, seed=3.0)
    assert c.ridge == 2.0 and isinstance(c.ridge, float) and c.seed == 3 and isinstance(c.seed, int)
    with pytest.raises(hm.HierMIOError, match="gap must be a finite number in"):
        c.updated(gap=-0.1)
    with pytest.raises(hm.HierMIOError, match="selection must be one of \\['column', 'cluster'\\], got 'rows'"):
        FitControl(selection="rows")
    with pytest.raises(hm.HierMIOError, match="unknown option 'timelimit' \\(did you mean 'time_limit'\\?\\)"):
        FitControl.from_options({"timelimit": 3}, "fit")


def test_summary_prints_the_control():
    fit = hm.fit("y ~ x + (1 | g)", simulate(K=6), 2, ridge=0.3, seed=4)
    assert "Control: ridge 0.3, selection column, time_limit 60 s, gap 0.0001, seed 4" in str(fit.summary())
    assert fit.control == FitControl(ridge=0.3, seed=4)


def test_cli_flags_come_from_the_control_object(tmp_path, capsys):
    path = tmp_path / "d.csv"
    simulate(K=6).to_csv(path, index=False)
    assert main(["fit", "y ~ x + (1 | g)", str(path), "--budget", "2", "--ridge", "0.7", "--no-certify"]) == 0
    out = capsys.readouterr().out
    assert "Control: ridge 0.7" in out and "certify False" in out


def test_a_new_level_rule_registered_from_outside_is_used_by_predict(monkeypatch):
    class PlusOne(NewLevelRule):
        name = "plus_one"

        def effects(self, train, X_new, newdata, labels, cluster_features):
            return np.ones((len(X_new), train.effects.shape[1]))

    monkeypatch.setitem(RULES, "plus_one", PlusOne())
    df = simulate(K=6)
    fit = hm.fit("y ~ x + (1 | g)", df, 2)
    new = df.head(3).assign(g=99)
    np.testing.assert_allclose(fit.predict(new, new_levels="plus_one"), fit.predict(new, re_form="~0") + 1.0)
    with pytest.raises(hm.HierMIOError, match="new_levels must be one of .*'plus_one'"):
        fit.predict(new, new_levels="plus_two")
    assert register_rule(PlusOne()).name == "plus_one"


def test_method_registry_fits_every_method_on_the_same_fixed_effects(sleepstudy):
    formula = "Reaction ~ Days + (1 | Subject)"
    design = build_design(formula, sleepstudy)
    for name, method in METHODS.items():
        res = method.fit(formula, sleepstudy, design, **({"budget": 3} if name == "mio" else {}))
        if name == "lmer" and not res.ok:
            continue  # R is not installed here
        assert res.ok, (name, res.messages)
        assert list(res.fixef.index) == list(design.fixed_names)
        assert res.predict(sleepstudy.head(4)).shape == (4,)
    # OLS through the registry is least squares on the design (an independent lstsq)
    ols = METHODS["ols"].fit(formula, sleepstudy, design)
    np.testing.assert_allclose(ols.fixef, np.linalg.lstsq(design.X, design.y, rcond=None)[0], rtol=1e-10)
