"""hiermio: regression on clustered data with L0-constrained cluster effects, by mixed-integer optimization.

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 + Days | Subject)", hm.load_dataset("sleepstudy"), budget=5)
>>> print(fit.summary())  # doctest: +SKIP
"""

# the public API, stage by stage (hiermio/<stage>/__init__.py says what each holds)
from .core.control import FitControl
from .core.exceptions import (BudgetError, DataError, FormulaError, HierMIOError, HierMIOWarning, Interrupted,
                              NotFittedError, NumericalError)
from .data.datasets import load_dataset, load_dietox
from .formula.terms import parse_formula
from .formula.design import build_design
from .solve.certificate import Certificate, SolverProgress
from .fitting.api import build_problem, default_mu, fit, make_fit, optimize
from .fitting.results import MIOFit
from .fitting.reports import Summary
from .fitting.estimator import HierMIO
from .workflow.audit import audit_curve, bootstrap
from .workflow.path import Path, path
from .workflow.stability import Stability, mb_bound, stability
from .workflow.validation import CVResult, cv, within_cluster_folds
from .comparisons.comparison import Comparison, compare, train_test_split_clusters
from .comparisons.lme4 import LmerFit, RNotAvailableError, lmer

__version__ = "0.1.0"

__all__ = [
    # the stages and the fit
    "fit", "build_problem", "optimize", "make_fit", "FitControl", "default_mu",
    # loops of fits and their reports
    "path", "Path", "cv", "CVResult", "within_cluster_folds", "stability", "Stability", "mb_bound",
    "audit_curve", "bootstrap", "compare", "Comparison", "train_test_split_clusters", "HierMIO",
    # results
    "MIOFit", "Summary", "Certificate", "SolverProgress",
    # formulas, designs, data, lme4
    "parse_formula", "build_design", "load_dataset", "load_dietox", "lmer", "LmerFit",
    # errors and warnings
    "HierMIOError", "HierMIOWarning", "FormulaError", "DataError", "BudgetError", "NotFittedError", "NumericalError",
    "Interrupted", "RNotAvailableError",
]
