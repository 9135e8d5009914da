"""Errors raised by hiermio.

Every error a user can trigger with bad input is a subclass of ``HierMIOError`` (itself a
``ValueError``), and its message names the offending column, term, level or value.
"""

from __future__ import annotations


class HierMIOError(ValueError):
    """Base class for every input error hiermio raises on purpose."""


class FormulaError(HierMIOError):
    """The formula cannot be parsed, or names something the data does not have."""


class DataError(HierMIOError):
    """The data cannot be used with the formula (NaN, non-numeric response, one-level factor...)."""


class BudgetError(HierMIOError):
    """A sparsity budget is missing, of the wrong type, or out of range."""


class NotFittedError(HierMIOError, AttributeError):
    """An estimator was used before ``fit``."""


class HierMIOWarning(UserWarning):
    """Something the user should know about a result that is still returned: dropped rows or
    columns, a gap above the one asked for, a budget capped to the number of levels."""


class NumericalError(HierMIOError):
    """The numbers cannot be trusted: a system is singular to working precision at these settings."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a fit or a loop of fits; nothing further was started.

    It is a ``KeyboardInterrupt``, so a user's own loop stops too. ``result`` holds what was
    finished: the interrupted fit with its best support and proven gap, or the fits of a path, cv,
    stability or bootstrap run completed before the interrupt (``None`` when there are none).
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
