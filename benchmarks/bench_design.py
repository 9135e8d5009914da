"""Building the model frame and matrices: hiermio's build_design beside lme4::lFormula, same process.

lFormula is timed inside R (the data already there), so the ratio is design building alone, with
no data transfer. Each figure is the median of 5 runs; ratio = hiermio / lme4 (below 1: faster).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings

import numpy as np

import hiermio as hm
from hiermio.comparisons.lme4 import _r_session, from_r, r_available

CASES = [
    ("lme4::sleepstudy", "Reaction ~ poly(Days, 2) + scale(Days) + (Days | Subject)"),
    ("lme4::cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
    ("mlmRev::Exam", "normexam ~ standLRT * sex + schgend + type + (standLRT | school)"),
    ("mlmRev::ScotsSec", "attain ~ verbal * sex + (1 | primary) + (1 | second)"),
    ("lme4::InstEval", "y ~ service * dept + (1 | s) + (1 | d)"),
]


def main() -> int:
    if not r_available():
        print("R with lme4 is not available: nothing to compare with")
        return 0
    print(f"{'data':<18} {'formula':<62} {'hiermio ms':>10} {'lFormula ms':>11} {'ratio':>6}")
    for data_expr, formula in CASES:
        df = from_r(data_expr)
        ours = []
        for _ in range(5):
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # Exam's collinear column is dropped with a warning each run
                warnings.simplefilter("ignore", hm.HierMIOWarning)
                hm.build_design(formula, df)
            ours.append(time.perf_counter() - t0)
        with _r_session() as R:
            timing = R["ro"].r(f"""local({{ d <- as.data.frame({data_expr}); f <- {formula}
                vapply(1:5, function(i) system.time(suppressMessages(lme4::lFormula(f, d)))[["elapsed"]], 1) }})""")
        theirs = statistics.median(np.asarray(timing, float))
        mine = statistics.median(ours)
        print(f"{data_expr.split('::')[1]:<18} {formula:<62} {1000 * mine:>10.1f} {1000 * theirs:>11.1f} "
              f"{mine / theirs if theirs > 0 else float('nan'):>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
