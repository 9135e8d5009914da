"""One way to run replicate work: joblib (local processes, or Dask via joblib's backend), in order,
with a progress bar when stderr is a terminal.

>>> from joblib import delayed
>>> run_parallel([delayed(abs)(-i) for i in range(3)], progress=False)
[0, 1, 2]
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from joblib import Parallel

from .control import check_bool, check_loop_options

__all__ = ["run_parallel", "progress_enabled", "with_progress"]


def progress_enabled(progress: bool | None) -> bool:
    """``None`` means: show bars when stderr is a terminal or the code runs in a Jupyter notebook,
    unless the environment variable ``HIERMIO_PROGRESS`` is ``0`` (``1`` forces them on).

    >>> progress_enabled(False), progress_enabled(True)
    (False, True)
    """
    if progress is not None:
        return check_bool(progress, "progress")
    env = os.environ.get("HIERMIO_PROGRESS", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return sys.stderr.isatty() or _in_notebook()


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (tqdm.auto then draws a notebook bar)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def with_progress(items: Iterable, progress: bool | None, desc: str, total: int | None = None,
                  unit: str = "it") -> Iterable:
    """``items``, wrapped in a tqdm bar when progress is enabled.

    >>> list(with_progress(range(3), False, "demo"))
    [0, 1, 2]
    """
    if not progress_enabled(progress):
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit, leave=False)


def run_parallel(jobs: Iterable, n_jobs: int | None = None, progress: bool | None = None,
                 desc: str = "fits", total: int | None = None) -> list[Any]:
    """Results of ``jobs`` (joblib ``delayed`` calls) in their order."""
    check_loop_options(progress, n_jobs)
    jobs = list(jobs)
    results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    return list(with_progress(results, progress, desc, total=total or len(jobs)))
