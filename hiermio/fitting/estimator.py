"""A scikit-learn estimator around :func:`hiermio.fit`, for pipelines and GridSearchCV."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from .api import fit
from ..core.control import FitControl
from ..formula.design import values_by_row
from ..core.exceptions import DataError, NotFittedError
from .newclusters import check_rule
from ..formula.terms import parse_formula
from .results import MIOFit
from ..problem.selection import Budget

__all__ = ["HierMIO"]


class HierMIO(RegressorMixin, BaseEstimator):
    """L0-constrained mixed model as a scikit-learn regressor.

    ``X`` is a data frame holding the covariates *and the grouping columns*; the response is
    either a column of ``X`` (call ``fit(X)``) or given as ``y``. Known levels are predicted with
    their cluster effects, unseen levels at population level, so ``GroupKFold`` works.

    >>> import hiermio as hm
    >>> from sklearn.model_selection import GroupKFold, cross_val_score
    >>> df = hm.load_dataset("sleepstudy")
    >>> est = hm.HierMIO("Reaction ~ Days + (1 | Subject)", budget=3)
    >>> scores = cross_val_score(est, df, df.Reaction, groups=df.Subject, cv=GroupKFold(3))
    >>> scores.shape
    (3,)
    """

    def __init__(
        self,
        formula: str = "y ~ 1",
        budget: Budget = 0,
        ridge: float = FitControl.ridge,
        selection: Literal["column", "cluster"] = FitControl.selection,
        time_limit: float = FitControl.time_limit,
        gap: float = FitControl.gap,
        seed: int = FitControl.seed,
        verbose: bool = FitControl.verbose,
        new_levels: str = "population",
        weights: str | None = None,
        offset: str | None = None,
    ) -> None:
        self.formula = formula
        self.budget = budget
        self.ridge = ridge
        self.selection = selection
        self.time_limit = time_limit
        self.gap = gap
        self.seed = seed
        self.verbose = verbose
        self.new_levels = new_levels
        self.weights = weights
        self.offset = offset

    def _frame(self, X, y=None) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise DataError("HierMIO needs X as a pandas DataFrame with the covariate and grouping columns")
        if y is None:
            return X
        response = parse_formula(self.formula).response
        if response not in X.columns and not response.isidentifier():
            raise DataError(f"response {response!r} is an expression; put it in X as a column and call fit(X)")
        return X.assign(**{response: values_by_row(y, X, "y")})  # a Series by its index, as weights are

    def fit(self, X: pd.DataFrame, y=None) -> "HierMIO":
        """Fit on ``X`` (and ``y``, the response, when it is not a column of ``X``)."""
        check_rule(self.new_levels)
        self.fit_: MIOFit = fit(self.formula, self._frame(X, y), self.budget, ridge=self.ridge,
                                selection=self.selection, time_limit=self.time_limit, gap=self.gap,
                                seed=self.seed, verbose=self.verbose, progress=False, weights=self.weights,
                                offset=self.offset)
        self.coef_ = self.fit_.fixef()
        self.certificate_ = self.fit_.certificate
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions with cluster effects for known levels; new levels by the ``new_levels`` rule."""
        if not hasattr(self, "fit_"):
            raise NotFittedError("this HierMIO is not fitted yet; call fit first")
        return self.fit_.predict(self._frame(X), new_levels=self.new_levels).to_numpy()
