"""Fixtures; the reference solvers and simulated data are in ``reference.py``."""

from __future__ import annotations

import pytest


@pytest.fixture
def sleepstudy():
    from hiermio import load_dataset

    return load_dataset("sleepstudy")
