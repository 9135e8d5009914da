import subprocess
import sys

import hiermio as hm
from reference import simulate


def test_fit_command_prints_summary(tmp_path):
    path = tmp_path / "d.csv"
    simulate(K=8).to_csv(path, index=False)
    out = subprocess.run([sys.executable, "-m", "hiermio", "fit", "y ~ x + (1 | g)", str(path), "--budget", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert "Formula: y ~ x + (1 | g)" in out and "(1 | g) <= 2 of 8 columns" in out


def test_fit_command_reports_bad_column_without_traceback(tmp_path):
    path = tmp_path / "d.csv"
    simulate(K=8).to_csv(path, index=False)
    res = subprocess.run([sys.executable, "-m", "hiermio", "fit", "y ~ nope + (1 | g)", str(path), "--budget", "2"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "unknown column 'nope'" in res.stderr and "Traceback" not in res.stderr


def test_demo_shows_both_fits():
    out = subprocess.run([sys.executable, "-m", "hiermio", "demo", "--budget", "3"], capture_output=True,
                         text=True, check=True).stdout
    assert "L0-constrained mixed model" in out
    assert ("Side by side" in out) or ("lme4 side of the comparison skipped" in out)
    if "Side by side" in out:
        assert "lme4" in out


def test_fit_command_takes_weights_and_r_formulas(tmp_path):
    path = tmp_path / "d.csv"
    df = simulate(K=8).assign(w=lambda d: 1.0 + (d.index % 3), **{"x.sq": lambda d: d.x**2})
    df.to_csv(path, index=False)
    out = subprocess.run([sys.executable, "-m", "hiermio", "fit", "y ~ I(x^2) + x.sq + (1 | g)", str(path),
                          "--budget", "2", "--weights", "w"], capture_output=True, text=True)
    # I(x^2) and the column x.sq are the same: lme4's rule drops the later one, with a message
    assert out.returncode == 0, out.stderr
    assert "I(x^2)" in out.stdout
    direct = hm.fit("y ~ I(x^2) + (1 | g)", df, budget=2, weights="w")
    assert f"{direct.fixef()['I(x^2)']:.4g}"[:5] in out.stdout
