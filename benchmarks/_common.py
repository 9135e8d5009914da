"""Shared pieces of the benchmark scripts: timing and printing (the data come from hiermio.paper.simulate)."""

from __future__ import annotations

import time

from hiermio.paper.simulate import simulate_confounded as clustered  # noqa: F401 - the scripts' data


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def real_data_cases():
    """The real data sets of the refit issue: (label, formula, data, budget)."""
    import hiermio as hm

    exam, pastes, pen = (hm.load_dataset(n) for n in ("Exam", "Pastes", "Penicillin"))
    return [
        ("Exam (1 | school), budget 10", "normexam ~ standLRT + sex + (1 | school)", exam, 10),
        ("Exam (1 + standLRT | school), budget 10", "normexam ~ standLRT + (1 + standLRT | school)", exam, 10),
        ("Pastes (1 | batch/cask), budget 8", "strength ~ 1 + (1 | batch/cask)", pastes, 8),
        ("Penicillin crossed, budget 6", "diameter ~ 1 + (1 | plate) + (1 | sample)", pen, 6),
    ]
