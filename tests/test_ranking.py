"""The ranking of atypical clusters: each level's gain is a difference of certified objectives,
checked here with the independent dense ridge solve."""

import numpy as np
import pytest

import hiermio as hm
from hiermio.comparisons.lme4 import r_available
from reference import dense_ridge, simulate


def test_gains_are_objective_differences_and_order_the_table():
    df = simulate(K=9, n_per=8, n_nonzero=3, effect=1.5, seed=3)
    fit = hm.fit("y ~ x + (1 | g)", df, 3, ridge=0.4, gap=0.0)
    table = fit.ranking()["g"]
    support = set(np.flatnonzero(fit.support))
    base = dense_ridge(fit.design, fit.mu, sorted(support))[0]
    for pos, level in enumerate(fit.design.terms[0].levels):
        other = support - {pos} if pos in support else support | {pos}
        value = dense_ridge(fit.design, fit.mu, sorted(other))[0]
        expected = value - base if pos in support else base - value
        assert table.loc[level, "gain"] == pytest.approx(expected, rel=1e-8, abs=1e-9)
        assert table.loc[level, "size"] == 8
        assert table.loc[level, "selected"] == (pos in support)
    assert table.gain.is_monotonic_decreasing
    assert table.selected.iloc[:3].all()  # what the certified support frees buys the most here
    np.testing.assert_allclose(table.loc[table.selected, "(Intercept)"],
                               fit.ranef()["g"].loc[table.index[table.selected], "(Intercept)"])


def test_ranking_joins_stability_frequencies_and_summary_lists_selected_levels():
    df = simulate(K=8, n_per=10, n_nonzero=2, effect=2.0, seed=4)
    fit = hm.fit("y ~ x + (1 | g)", df, 2)
    st = hm.stability("y ~ x + (1 | g)", df, 2, B=4)
    table = fit.ranking(stability=st.frequencies)["g"]
    np.testing.assert_allclose(table.frequency, st.frequencies["(1 | g)"].reindex(table.index))
    np.testing.assert_allclose(fit.ranking(stability=st)["g"].frequency, table.frequency)
    with pytest.raises(hm.HierMIOError, match="stability must be hiermio.stability"):
        fit.ranking(stability=[0.5])
    with pytest.raises(hm.HierMIOError, match="reference must be a fit with ranef"):
        fit.ranking(reference="lme4")
    line = next(ln for ln in str(fit.summary()).splitlines() if ln.startswith("Selected levels of g (sign, rows): "))
    for level in table.index[table.selected]:
        sign = "+" if table.loc[level, "(Intercept)"] > 0 else "-"
        assert f"{level} ({sign}, 10)" in line


@pytest.mark.skipif(not r_available(), reason="needs R with lme4")
def test_ranking_joins_lme4s_blups_by_level():
    df = hm.load_dataset("sleepstudy")
    fit = hm.fit("Reaction ~ Days + (1 | Subject)", df, 3)
    ref = hm.lmer("Reaction ~ Days + (1 | Subject)", df)
    table = fit.ranking(reference=ref)["Subject"]
    blups = ref.ranef()["Subject"]["(Intercept)"]
    np.testing.assert_allclose(table["lme4 (Intercept)"], blups.reindex(table.index))


def test_caterpillar_plot_marks_selected_and_population_levels():
    import matplotlib

    matplotlib.use("Agg")
    df = simulate(K=9, n_per=8, n_nonzero=3, effect=1.5, seed=3)
    fit = hm.fit("y ~ x + (1 | g)", df, 3)
    fig = fit.plot()
    ax = fig.axes[0]
    assert ax.get_title() == "g: 3 of 9 levels differ from the population"
    crosses = ax.collections[-1].get_offsets()
    assert len(crosses) == 6 and np.all(np.asarray(crosses)[:, 0] == 0)
    with pytest.raises(hm.HierMIOError, match="coef must be one of the effects"):
        fit.plot(coef="Days")
