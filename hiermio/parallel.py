"""One way to run replicate work: joblib (local processes, or Dask via joblib's backend), in order,
with a progress bar when stderr is a terminal.

>>> from joblib import delayed
>>> run_parallel([delayed(abs)(-i) for i in range(3)], progress=False)
[0, 1, 2]
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

from joblib import Parallel

__all__ = ["run_parallel"]


def run_parallel(jobs: Iterable, n_jobs: int | None = None, progress: bool | None = None,
                 desc: str = "fits", total: int | None = None) -> list[Any]:
    """Results of ``jobs`` (joblib ``delayed`` calls) in their order."""
    jobs = list(jobs)
    if progress is None:
        progress = sys.stderr.isatty()
    results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, total=total or len(jobs), desc=desc, leave=False)
    return list(results)
