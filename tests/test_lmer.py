"""lme4 through rpy2, checked against lme4's own published numbers."""

import numpy as np
import pytest

import hiermio as hm
from hiermio.comparisons.lme4 import r_available

needs_r = pytest.mark.skipif(not r_available(), reason="R with lme4 and rpy2 not installed")


@needs_r
def test_sleepstudy_matches_lme4_published_values():
    ref = hm.lmer("Reaction ~ Days + (Days | Subject)", hm.load_dataset("sleepstudy"), REML=True)
    assert ref.status == "converged"
    np.testing.assert_allclose(ref.fixef().to_numpy(), [251.405, 10.467], atol=5e-4)
    assert ref.sigma == pytest.approx(25.59, abs=5e-3)
    assert ref.logLik == pytest.approx(-871.814, abs=5e-4)


@needs_r
def test_dyestuff2_singular_fit_is_captured():
    ref = hm.lmer("Yield ~ 1 + (1 | Batch)", hm.load_dataset("Dyestuff2"))
    assert ref.singular and ref.status == "singular"
    assert any("singular" in m for m in ref.messages)


@needs_r
def test_unfittable_model_comes_back_failed_with_lme4_message():
    df = hm.load_dataset("sleepstudy").groupby("Subject").head(1)
    ref = hm.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert ref.status == "failed"
    assert "number of levels of each grouping factor" in ref.error
    with pytest.raises(hm.HierMIOError, match="lme4 failed to fit"):
        ref.fixef()


@needs_r
def test_population_prediction_is_fixed_part():
    df = hm.load_dataset("sleepstudy")
    ref = hm.lmer("Reaction ~ Days + (Days | Subject)", df)
    pop = ref.predict(df.head(3), re_form="~0").to_numpy()
    np.testing.assert_allclose(pop, ref.fixef()["(Intercept)"] + ref.fixef()["Days"] * df.Days.head(3))


def test_missing_r_gives_install_instructions(monkeypatch):
    import sys

    import hiermio.comparisons.lme4 as bridge

    monkeypatch.setattr(bridge, "_R", {})
    monkeypatch.setitem(sys.modules, "rpy2.rinterface_lib", None)  # as if rpy2 were not installed
    with pytest.raises(hm.RNotAvailableError, match="apt-get install r-base-core r-cran-lme4"):
        hm.lmer("Reaction ~ Days + (Days | Subject)", hm.load_dataset("sleepstudy"))
    assert not bridge.r_available()
