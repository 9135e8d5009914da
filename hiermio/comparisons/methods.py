"""The methods hiermio is compared with, and hiermio itself, behind one interface.

:func:`hiermio.compare` and the simulation study (:mod:`hiermio.paper.reproduce`) both fit through
``METHODS``, so each method is written once: OLS and ridge on the same fixed-effects matrix (the
intercept unpenalised, one ridge grid), lme4 with its status decided in :func:`hiermio.comparisons.lme4.lmer_status`,
and MIO at a given budget or one chosen by cross-validation.

>>> import hiermio as hm
>>> from hiermio.formula.design import build_design
>>> df = hm.load_dataset("sleepstudy")
>>> design = build_design("Reaction ~ Days + (1 | Subject)", df)
>>> ols = METHODS["ols"].fit("Reaction ~ Days + (1 | Subject)", df, design)
>>> ols.status, ols.fixef.round(2).tolist()
('ok', [251.41, 10.47])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, RidgeCV

from ..formula.design import Design

__all__ = ["METHODS", "Method", "MethodFit", "RIDGE_ALPHAS"]

RIDGE_ALPHAS = np.logspace(-4, 4, 41)  # ridge's penalty grid, chosen by leave-one-out CV


@dataclass
class MethodFit:
    """One method's fit: status, estimates, and predictions for new rows (unseen clusters at the
    method's own rule: population level for lme4, ``new_levels`` for MIO)."""

    name: str
    status: str
    fixef: pd.Series | None = None
    ranef: dict[str, pd.DataFrame] = field(default_factory=dict)
    icc: float = np.nan
    n_effects: float = np.nan
    messages: list[str] = field(default_factory=list)
    model: Any = None  # MIOFit, LmerFit or the scikit-learn model
    fitted: np.ndarray | None = None  # predictions for the training rows
    predictor: Callable[[pd.DataFrame], np.ndarray] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predictor(frame), dtype=float)


class Method(ABC):
    """A way to fit ``formula`` to ``data``; ``design`` is hiermio's design of the same rows."""

    name: str

    @abstractmethod
    def fit(self, formula: str, data: pd.DataFrame, design: Design, **options: Any) -> MethodFit:
        """Fit; a method that cannot run (R missing, lme4 failing) returns status "failed"."""


class _Linear(Method):
    """A fixed-effects-only fit on the design's matrix; the intercept column is never penalised."""

    def _model(self, design: Design):
        raise NotImplementedError

    def fit(self, formula, data, design, **options):
        model = self._model(design)
        intercept = "(Intercept)" in design.fixed_names
        X = design.X
        if isinstance(model, RidgeCV) and intercept:
            # the intercept column is constant: fit it as scikit-learn's unpenalised intercept
            X = np.delete(X, design.fixed_names.index("(Intercept)"), axis=1)
        model.fit(X, design.y_adjusted, sample_weight=design.weights)
        coef = model.coef_.copy()
        if isinstance(model, RidgeCV) and intercept:
            coef = np.insert(coef, design.fixed_names.index("(Intercept)"), model.intercept_)
        off = design.offset if design.offset is not None else 0.0
        messages = [f"ridge penalty {model.alpha_:.4g} chosen by leave-one-out CV"] if isinstance(model, RidgeCV) else []
        return MethodFit(self.name, "ok", pd.Series(coef, index=list(design.fixed_names)), messages=messages,
                         model=model, fitted=design.X @ coef + off,
                         predictor=lambda frame: design.fixed_matrix(frame) @ coef + design.offset_for(frame))


class OLS(_Linear):
    name = "ols"

    def _model(self, design):
        return LinearRegression(fit_intercept=False)


class Ridge(_Linear):
    name = "ridge"

    def _model(self, design):
        return RidgeCV(alphas=RIDGE_ALPHAS, fit_intercept="(Intercept)" in design.fixed_names)


class Lme4(Method):
    """lme4's ``lmer`` in R; new clusters at population level (lme4's answer)."""

    name = "lmer"

    def fit(self, formula, data, design, REML: bool = True, weights: Any = None, offset: Any = None,  # noqa: N803
            **options):
        from .lme4 import RNotAvailableError, lmer

        try:
            ref = lmer(formula, data, REML=REML, weights=weights, offset=offset)
        except RNotAvailableError as exc:
            return MethodFit(self.name, "failed", messages=[str(exc)])
        if ref.status == "failed":
            return MethodFit(self.name, "failed", messages=[ref.error, *ref.messages], model=ref)
        ranef = ref.ranef()
        return MethodFit(self.name, ref.status, ref.fixef(), ranef,
                         icc=float(ref.icc.iloc[0]) if len(ref.icc) else np.nan,
                         n_effects=int(sum((v != 0).to_numpy().sum() for v in ranef.values())),
                         messages=list(ref.messages), model=ref, fitted=ref.predict(data).to_numpy(),
                         predictor=lambda frame: ref.predict(frame).to_numpy())


class MIO(Method):
    """hiermio at ``budget`` (or ``"cv"``: chosen by :func:`hiermio.cv` on these rows); new
    clusters by the ``new_levels`` rule."""

    name = "mio"

    def fit(self, formula, data, design, budget: Any = 5, new_levels: str = "population", cv_scheme: str = "within",
            random_state: int = 0, **options):
        from ..fitting.api import fit
        from ..workflow.validation import cv

        note = []
        if isinstance(budget, str) and budget == "cv":
            # the folds screen (cv's certify=False); the chosen budget's fit follows the options
            chosen = cv(formula, data, scheme=cv_scheme, random_state=random_state, new_levels=new_levels,
                        progress=False, **{k: v for k, v in options.items() if k != "certify"})
            res, note = chosen.best_fit_, [f"budget {chosen.best_budget_} chosen by 5-fold {cv_scheme} CV"]
        else:
            res = fit(formula, data, budget, progress=False, **options)
        c = res.certificate
        return MethodFit(self.name, c.status, res.fixef(), res.ranef(),
                         icc=float(res.icc.iloc[0]) if len(res.icc) else np.nan, n_effects=res.n_nonzero,
                         messages=[*note, f"gap {100 * c.gap:.3g}%"], model=res, fitted=res.fitted().to_numpy(),
                         predictor=lambda frame: res.predict(frame, new_levels=new_levels).to_numpy())


METHODS: dict[str, Method] = {m.name: m for m in (OLS(), Ridge(), Lme4(), MIO())}
