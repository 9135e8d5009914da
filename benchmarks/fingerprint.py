"""Fingerprints of certified fits on the benchmark and vignette data sets, to show that a refactoring
changes nothing: support, objective (12 digits), certificate status and fixed effects.

    python benchmarks/fingerprint.py --write before.json   # before the change
    python benchmarks/fingerprint.py --compare before.json # after: prints a table, exit 1 on a difference

Only fits that certify well inside their time limit are used, so the result does not depend on the
machine's speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

import hiermio as hm
from _common import clustered

CASES = [
    ("sleepstudy", "Reaction ~ Days + (1 + Days | Subject)", 5, {}),
    ("sleepstudy", "Reaction ~ Days + (1 + Days | Subject)", 4, {"selection": "cluster"}),
    ("Dyestuff", "Yield ~ 1 + (1 | Batch)", 2, {}),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", 6, {"ridge": 1.0}),
    ("Exam", "normexam ~ standLRT + sex + (1 | school)", 10, {"ridge": 1.0}),
    ("Exam", "normexam ~ standLRT + (1 + standLRT | school)", 10, {"ridge": 1.0}),
    ("clustered", None, 8, {"ridge": 0.5}),
]


def fingerprints() -> dict[str, dict]:
    out = {}
    for name, formula, budget, options in CASES:
        if name == "clustered":
            df, formula = clustered(K=60, n_per=20, p=5, n_nonzero=8, seed=1)
        else:
            df = hm.load_dataset(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hm.HierMIOWarning)
            fit = hm.fit(formula, df, budget, time_limit=60, progress=False, **options)
        key = f"{name}: {formula}, budget {budget} {options or ''}".strip()
        out[key] = {"support": np.flatnonzero(fit.support).tolist(), "objective": float(f"{fit.certificate.primal:.12g}"),
                    "status": fit.certificate.status, "fixef": [float(f"{v:.10g}") for v in fit.fixef()],
                    "time_s": round(fit.timings["total"], 3)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write")
    ap.add_argument("--compare")
    args = ap.parse_args()
    now = fingerprints()
    if args.write:
        with open(args.write, "w") as fh:
            json.dump(now, fh, indent=1)
    if args.compare:
        with open(args.compare) as fh:
            before = json.load(fh)
        ok = True
        print(f"{'case':<80} {'support':>8} {'objective':>10} {'status':>7} {'fixef':>6} {'time before/after':>18}")
        for key, a in now.items():
            b = before.get(key)
            if b is None:
                print(f"{key:<80} new")
                continue
            same = {"support": a["support"] == b["support"],
                    "objective": np.isclose(a["objective"], b["objective"], rtol=1e-10, atol=0),
                    "status": a["status"] == b["status"],
                    "fixef": np.allclose(a["fixef"], b["fixef"], rtol=1e-8, atol=1e-12)}
            ok &= all(same.values())
            cells = " ".join(f"{'same' if v else 'DIFF':>{w}}" for v, w in zip(same.values(), (8, 10, 7, 6)))
            print(f"{key[:80]:<80} {cells} {b['time_s']:>8.3f}/{a['time_s']:.3f}")
        return 0 if ok else 1
    print(json.dumps(now, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
