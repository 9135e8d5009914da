"""Shared pieces of the benchmark scripts: timing and printing (the data come from hiermio.simulate)."""

from __future__ import annotations

import time

from hiermio.simulate import simulate_confounded as clustered  # noqa: F401 - the scripts' data


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0
