"""The paper's simulation study: table bookkeeping, a small run of every scale, the command line."""

import numpy as np
import pandas as pd
import pytest

from hiermio.cli import main
from hiermio.core.exceptions import HierMIOError
from hiermio.comparisons.lme4 import r_available
from hiermio.paper.published import FIGURES, PAPER_TABLES, TABLE_ORDER
from hiermio.paper.reproduce import markdown_table, parse_tables, run_study, study_scenarios

METHODS = ["ols", "ridge", "lmer", "mio"] if r_available() else ["ols", "ridge", "mio"]
SMALL = {"sparse": [0.9, 0.0], "gaussian": [10.0, 100.0], "icc": [0.5]}


def test_table_labels_parse_with_ranges_and_name_the_bad_one():
    assert parse_tables("1..4") == ["1", "2", "3", "4"]
    assert parse_tables("A9..A10,2") == ["A9", "A10", "2"]
    assert parse_tables("all") == TABLE_ORDER
    with pytest.raises(HierMIOError, match="'A11'"):
        parse_tables("A1,A11")
    with pytest.raises(HierMIOError, match="backwards"):
        parse_tables("A3..A1")


def test_the_papers_66_scenarios_and_the_icc_family():
    every = study_scenarios(TABLE_ORDER, ["low", "medium", "high"])
    fams = pd.DataFrame(every).groupby("family").size().to_dict()
    assert fams == {"sparse": 36, "gaussian": 30, "icc": 9}
    assert {sc["scale"] for sc in study_scenarios(["A5"], ["low", "high"], figures=False)} == {"low", "high"}
    with pytest.raises(HierMIOError, match="'huge'"):
        study_scenarios(["1"], ["huge"])
    with pytest.raises(HierMIOError, match="'sparce'"):
        study_scenarios(["1"], ["high"], levels={"sparce": [0.9]})


def test_paper_tables_are_complete():
    for label in TABLE_ORDER:
        t = PAPER_TABLES[label]
        assert all(len(v) == len(t["columns"]) for v in t["rows"].values()), label
        assert len(t["rows"]) == {"sparse": 12, "gaussian": 10, "icc": 9}[t["effects"]], label
    # the text's own check on Table 3: MIO below LMEM at every sparsity level
    t3 = PAPER_TABLES["3"]
    assert all(v[3] < v[2] for v in t3["rows"].values())
    assert set(FIGURES.values()) == {"low", "medium", "high"}


@pytest.fixture(scope="module")
def small_study():
    return run_study(tables="all", reps=2, levels=SMALL, methods=METHODS, n_jobs=2, progress=False)


def test_small_study_supports_the_papers_claims_at_every_scale(small_study, capsys):
    checks = small_study.checks()
    with capsys.disabled():
        print("\n" + checks.to_string(index=False))
    # the two claims the small run must support at every scale (the lme4 comparison is reported)
    required = checks[~checks.claim.str.contains("lme4")]
    assert len(required) == 6
    assert required.holds.all(), required
    assert checks.claim.str.contains("lme4").sum() == (3 if "lmer" in METHODS else 0)


def test_tables_put_the_papers_values_beside_means_of_the_replicates(small_study):
    raw = small_study.raw
    t = small_study.table("3")
    mio = raw[(raw.family == "sparse") & (raw.scale == "high") & (raw.method == "mio")]
    assert t.loc[0.9, "mio"] == pytest.approx(mio[np.isclose(mio.level, 0.9)].beta_error.mean())
    assert t.loc[0.9, "mio (paper)"] == PAPER_TABLES["3"]["rows"][0.9][3]
    assert (t.reps == 2).all() and list(t.index) == [0.9, 0.0]
    a5 = small_study.table("A5")
    assert list(a5.columns[:2]) == ["low", "low (paper)"] and (a5.loc[0.0, ["low", "medium", "high"]] == 0).all()
    # budgets chosen on validation never exceed the number of clusters
    k = raw.scale.map({"low": 4, "medium": 10, "high": 14})
    assert (raw.budget.dropna() <= k[raw.budget.notna()]).all()


def test_write_gives_csv_markdown_and_figures(small_study, tmp_path):
    files = small_study.write(tmp_path)
    names = {f.name for f in files}
    assert {"raw.csv", "README.md", "checks.csv", "table_1.csv", "table_A10.md"} <= names
    assert {f"figure_{k}.png" for k in FIGURES} <= names
    assert all(f.stat().st_size > 0 for f in files)
    back = pd.read_csv(tmp_path / "table_3.csv", index_col=0)
    np.testing.assert_allclose(back["mio"].to_numpy(), small_study.table("3")["mio"].to_numpy())


def test_markdown_table_formats_numbers_and_blanks():
    df = pd.DataFrame({"a": [0.123456, np.nan]}, index=pd.Index([1, 2], name="level"))
    assert markdown_table(df).splitlines() == ["| level | a |", "|---|---|", "| 1 | 0.1235 |", "| 2 |  |"]


def test_command_line_writes_the_tables(tmp_path, capsys):
    rc = main(["reproduce", "--tables", "A5", "--reps", "1", "--scale", "low", "--jobs", "2",
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "Table A5" in out and (tmp_path / "table_A5.md").exists()
    assert (tmp_path / "figure_A1.png").exists() and not (tmp_path / "figure_2.png").exists()
    rc = main(["reproduce", "--tables", "B7", "--out", str(tmp_path)])
    assert rc == 2 and "unknown table 'B7'" in capsys.readouterr().err


def test_tables_of_methods_not_run_are_left_out():
    study = run_study(tables=["2", "A1"], reps=1, scales=["low"], levels={"sparse": [0.5], "gaussian": [10.0]},
                      methods=["ols"], progress=False)
    assert study.table("2").empty  # gamma recovery: lme4 and MIO only
    assert list(study.table("A1").columns) == ["ols", "ols (paper)", "reps"]
    with pytest.raises(HierMIOError, match="'B2'"):
        study.table("B2")
