"""Parallel work goes through joblib: local processes and a Dask cluster give identical results."""

import pandas as pd
import pytest
from joblib import parallel_backend

import hiermio as hm
from reference import simulate


def _run():
    df = simulate(K=6, n_per=10, n_nonzero=2, effect=1.5, seed=9)
    cvres = hm.cv("y ~ x + (1 | g)", df, budgets=[0, 1, 2, 3], folds=3, random_state=2, n_jobs=2)
    st = hm.stability("y ~ x + (1 | g)", df, budget=2, B=4, random_state=2, n_jobs=2)
    return cvres.table, st.frequencies


def test_loky_and_dask_backends_agree():
    distributed = pytest.importorskip("distributed")
    with parallel_backend("loky", n_jobs=2):
        cv_loky, st_loky = _run()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        with parallel_backend("dask"):
            cv_dask, st_dask = _run()
    pd.testing.assert_frame_equal(cv_loky, cv_dask)
    pd.testing.assert_frame_equal(st_loky, st_dask)


def test_progress_default_follows_the_environment_and_notebooks(monkeypatch):
    import sys
    import types

    from hiermio.core.parallel import progress_enabled

    monkeypatch.setenv("HIERMIO_PROGRESS", "1")
    assert progress_enabled(None) and not progress_enabled(False)
    monkeypatch.setenv("HIERMIO_PROGRESS", "0")
    assert not progress_enabled(None) and progress_enabled(True)
    monkeypatch.delenv("HIERMIO_PROGRESS")
    # inside a Jupyter kernel (a ZMQInteractiveShell) bars are on although stderr is not a terminal
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_enabled(None)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress_enabled(None)
