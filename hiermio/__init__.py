"""hiermio: regression on clustered data with L0-constrained cluster effects, by mixed-integer optimization.

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 + Days | Subject)", hm.load_dataset("sleepstudy"), budget=5)
>>> print(fit.summary())  # doctest: +SKIP
"""

from .api import default_mu, fit
from .audit import audit_curve, bootstrap
from .compare import Comparison, compare, train_test_split_clusters
from .datasets import load_dataset, load_dietox
from .design import build_design
from .estimator import HierMIO
from .control import FitControl
from .exceptions import (BudgetError, DataError, FormulaError, HierMIOError, HierMIOWarning, Interrupted,
                         NotFittedError, NumericalError)
from .formula import parse_formula
from .lme4 import LmerFit, RNotAvailableError, lmer
from .certificate import Certificate, SolverProgress
from .path import Path, path
from .reports import Summary
from .results import MIOFit
from .stability import Stability, mb_bound, stability
from .validation import CVResult, cv, within_cluster_folds

__version__ = "0.1.0"

__all__ = [
    "fit", "default_mu", "audit_curve", "bootstrap", "stability", "Stability", "mb_bound", "path", "Path", "cv", "CVResult", "within_cluster_folds", "compare", "Comparison", "train_test_split_clusters", "HierMIO", "MIOFit", "Summary", "Certificate", "SolverProgress",
    "parse_formula", "build_design", "load_dataset", "load_dietox", "lmer", "LmerFit", "RNotAvailableError",
    "HierMIOError", "HierMIOWarning", "FormulaError", "DataError", "BudgetError", "NotFittedError", "NumericalError",
    "Interrupted", "FitControl",
]
