import numpy as np
import pytest

import hiermio as hm
from hiermio.comparisons.lme4 import r_available
from reference import simulate

needs_r = pytest.mark.skipif(not r_available(), reason="R with lme4 and rpy2 not installed")


def test_within_split_keeps_every_cluster_in_training():
    df = hm.load_dataset("sleepstudy")
    tr, te = hm.train_test_split_clusters(df, "Subject", "within", test_size=0.2, random_state=3)
    assert len(tr) + len(te) == len(df) and not set(tr.index) & set(te.index)
    assert set(te.Subject) <= set(tr.Subject)
    assert te.groupby("Subject").size().eq(2).all()


def test_cluster_split_holds_out_whole_clusters():
    df = hm.load_dataset("sleepstudy")
    tr, te = hm.train_test_split_clusters(df, "Subject", "cluster", test_size=0.25, random_state=3)
    assert not set(tr.Subject) & set(te.Subject)
    assert te.Subject.nunique() == round(0.25 * 18)


def test_ols_and_ridge_rows_match_independent_fits():
    df = simulate(K=10, n_per=15, seed=2)
    train, test = df.iloc[::2], df.iloc[1::2]
    cmp = hm.compare("y ~ x + z + (1 | g)", train, test=test, methods=["ols", "ridge", "mio"], budget=3)
    X = np.column_stack([np.ones(len(train)), train.x, train.z])
    beta = np.linalg.lstsq(X, train.y.to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(cmp.fixef["ols"].to_numpy(), beta, rtol=1e-10)
    Xt = np.column_stack([np.ones(len(test)), test.x, test.z])
    assert cmp.table.loc["ols", "test_mse"] == pytest.approx(np.mean((test.y - Xt @ beta) ** 2))
    mio = hm.fit("y ~ x + z + (1 | g)", train, budget=3)
    assert cmp.table.loc["mio", "test_mse"] == pytest.approx(np.mean((test.y - mio.predict(test)) ** 2))
    assert cmp.table.loc["mio", "n_effects"] == mio.n_nonzero <= 3
    assert "Fixed effects" in str(cmp)


def test_unknown_method_is_named():
    with pytest.raises(hm.HierMIOError, match=r"unknown method\(s\) \['lasso'\]"):
        hm.compare("y ~ x + (1 | g)", simulate(), methods=["lasso"])


@needs_r
def test_dietox_matches_lme4_published_fixed_effects():
    ref = hm.lmer("Weight ~ Time + (1 | Pig)", hm.load_dietox())
    np.testing.assert_allclose(ref.fixef().to_numpy(), [15.723523, 6.942505], rtol=1e-5)


@needs_r
def test_compare_reports_lme4_failure_and_the_other_methods():
    # two rows per subject: as many random effects as observations, which lme4 refuses
    df = hm.load_dataset("sleepstudy").groupby("Subject").head(2)
    cmp = hm.compare("Reaction ~ Days + (Days | Subject)", df, methods=["ols", "lmer", "mio"], budget=2)
    assert cmp.table.loc["lmer", "status"] == "failed"
    assert any("number of observations" in m for m in cmp.table.loc["lmer", "messages"])
    assert cmp.table.loc["ols", "status"] == "ok" and np.isfinite(cmp.table.loc["mio", "train_mse"])
    assert "lmer" not in cmp.fixef.columns


@needs_r
def test_compare_on_dyestuff2_reports_singular_fit():
    cmp = hm.compare("Yield ~ 1 + (1 | Batch)", hm.load_dataset("Dyestuff2"), methods=["lmer", "mio"], budget=2)
    assert cmp.table.loc["lmer", "status"] == "singular"
    assert cmp.table.loc["mio", "status"] in ("optimal", "closed_form")


@needs_r
def test_coefficient_names_line_up_for_categoricals():
    df = simulate(K=8, seed=1).assign(sex=lambda d: np.where(d.x > 0, "M", "F"))
    cmp = hm.compare("y ~ x + sex + (1 | g)", df, methods=["lmer", "mio"], budget=2)
    assert list(cmp.fixef.index) == ["(Intercept)", "x", "sexM"]
    assert cmp.fixef.notna().all().all()


def test_plot_draws_both_panels(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    df = hm.load_dataset("sleepstudy")
    methods = ["ols", "lmer", "mio"] if r_available() else ["ols", "mio"]
    cmp = hm.compare("Reaction ~ Days + (1 | Subject)", df, methods=methods, budget=3)
    fig = cmp.plot()
    titles = [a.get_title() for a in fig.axes]
    assert titles[:2] == ["(Intercept)", "Days"] and titles[-1] == "Cluster effects"
    lo, hi = fig.axes[1].get_xlim()  # the slope's own scale: about 10, not the intercept's 250
    assert lo < cmp.fixef.loc["Days"].min() <= cmp.fixef.loc["Days"].max() < hi and hi - lo < 5
    if "lmer" in methods:  # the selected levels are named on the cluster panel
        named = {t.get_text() for t in fig.axes[-1].texts}
        assert named == {str(v) for v in cmp.fits["mio"].selected["(1 | Subject)"]}
    fig.savefig(tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").stat().st_size > 1000
