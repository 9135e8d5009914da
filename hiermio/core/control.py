"""Every option of a fit, validated in one place (lme4's ``lmerControl``).

``fit``, ``path``, ``cv``, ``stability``, ``bootstrap``, ``compare``, ``HierMIO`` and the CLI all
turn the options they are given into a :class:`FitControl` before any work starts, so a misspelt
option or a bad value fails at once, with the option's name, whichever entry point it came through.

>>> FitControl(ridge=0.5).ridge
0.5
>>> FitControl.from_options({"ridg": 0.2}, "cv")
Traceback (most recent call last):
...
hiermio.core.exceptions.HierMIOError: cv() got an unknown option 'ridg' (did you mean 'ridge'?); its options are ...
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields, replace
from numbers import Integral, Real
from typing import Any, Mapping

import numpy as np

from .exceptions import HierMIOError

__all__ = ["FitControl", "MIN_RIDGE", "REFIT_RIDGE", "VECTOR_OPTIONS", "check_integer", "check_choice", "check_bool",
           "check_real", "check_loop_options"]

# Below this relative ridge weight the cluster effects of a full support and the intercept are
# numerically indistinguishable (the profiled information on the fixed effects is singular to
# working precision) and the outer-approximation cuts exceed what an LP solver can represent.
MIN_RIDGE = 1e-6
# The refit's ridge, relative to the selection's: small enough to change no estimable coefficient
# beyond the 7th digit, large enough to identify what the data alone cannot.
REFIT_RIDGE = 1e-7
_MAX_SEED = 2**31 - 1  # SCIP's random seeds are C ints
# per-row arguments of a fit that are data, not options: loops accept them beside the options
VECTOR_OPTIONS = ("weights", "offset")


def check_integer(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int, or an error naming ``name``; booleans and fractions are refused.

    >>> check_integer(3.0, "folds", 2)
    3
    >>> check_integer(2.5, "budget")
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.HierMIOError: budget must be a whole number, got 2.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Integral, Real)):
        raise HierMIOError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, Real) and not isinstance(value, Integral):
        if not np.isfinite(value) or float(value) != int(value):
            raise HierMIOError(f"{name} must be a whole number, got {value!r}")
    out = int(value)
    if (low is not None and out < low) or (high is not None and out > high):
        rng = f"at least {low}" if high is None else f"in {low}..{high}" if low is not None else f"at most {high}"
        raise HierMIOError(f"{name} must be {rng}, got {value!r}")
    return out


def check_real(value: Any, name: str, ok, rule: str) -> float:
    """``value`` as a float if it is a finite number for which ``ok`` holds, else an error naming
    ``name`` and ``rule``; booleans and strings are refused.

    >>> check_real(0.9, "level", lambda v: 0 < v < 1, "strictly between 0 and 1")
    0.9
    >>> check_real("0.9", "level", lambda v: 0 < v < 1, "strictly between 0 and 1")
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.HierMIOError: level must be a finite number strictly between 0 and 1, got '0.9'
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not np.isfinite(value) or not ok(value):
        raise HierMIOError(f"{name} must be a finite number {rule}, got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``, else an error listing them.

    >>> check_choice("min", "rule", ("min", "1se"))
    'min'
    """
    if not isinstance(value, str) or value not in choices:
        raise HierMIOError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a boolean, else an error naming ``name``: a string such as ``"no"`` is
    truthy in Python and must not be read as True.

    >>> check_bool(False, "refit")
    False
    >>> check_bool("no", "allow_new_levels")
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.HierMIOError: allow_new_levels must be True or False, got 'no'
    """
    if not isinstance(value, (bool, np.bool_)):
        raise HierMIOError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_loop_options(progress: Any = None, n_jobs: Any = None) -> None:
    """The options every loop of fits shares (cv, stability, bootstrap, path, compare), checked
    before its first fit: ``progress`` None (automatic), True or False; ``n_jobs`` None or a whole
    number other than 0 (joblib's: -1 uses every core).

    >>> check_loop_options(progress=None, n_jobs=-1)
    >>> check_loop_options(progress="no")
    Traceback (most recent call last):
    ...
    hiermio.core.exceptions.HierMIOError: progress must be True or False, got 'no'
    """
    if progress is not None:
        check_bool(progress, "progress")
    if n_jobs is not None and check_integer(n_jobs, "n_jobs") == 0:
        raise HierMIOError("n_jobs must be a whole number other than 0 (1: in this process, -1: every core), got 0")


@dataclass(frozen=True)
class FitControl:
    """The options of one fit. Every entry point validates its options by building one.

    Parameters
    ----------
    ridge
        Ridge weight on the cluster effects, relative to the median per-level z'z of each column
        (see :func:`hiermio.default_mu`); at least ``MIN_RIDGE`` (1e-6).
    selection
        ``"column"`` (one binary per term x level x coefficient, a budget per term) or
        ``"cluster"`` (one binary per level, a budget per grouping factor).
    na_action
        ``"drop"`` rows with missing values (counted, with a warning) or ``"raise"``.
    time_limit, gap
        Seconds for the heuristics and the search together, and the relative gap at which the
        search stops.
    seed, threads, verbose
        SCIP's random seed (0..2^31-1), its thread count, and its log.
    certify
        ``False`` skips the branch-and-bound; the gap is the continuous relaxation's.
    enumerate_below
        Problems with at most this many supports that use every budget in full are solved by
        evaluating them all (exact, and faster than a search); 0 always searches.
    search
        How the search proves its bound. ``"auto"`` branches on the fixed effects
        (:mod:`hiermio.solve.fixed_branching`) when the cluster effects belong to one grouping factor
        or to nested ones, no term has a tail budget and there are at most 10 fixed effects, and runs SCIP's outer
        approximation otherwise;
        ``"fixed_effects"`` and ``"outer_approximation"`` ask for one of them.
    refit
        Select, then refit: the support is chosen (and certified) on the L0-ridge objective, and
        the reported fixed and cluster effects are refitted on it without the ridge (a ridge
        ``REFIT_RIDGE`` times the selection's keeps a cluster too small to be estimated alone, or
        a full set of levels beside the intercept, identified). ``False`` reports the selection's
        ridge estimates.
    """

    ridge: float = field(default=1.0, metadata={"help": "ridge weight of the selection, relative to the median per-level z'z"})
    selection: str = field(default="column", metadata={"help": "one binary per column (budget per term) or per "
                                                                "level (budget per grouping factor)"})
    na_action: str = field(default="drop", metadata={"help": "drop rows with missing values, or raise"})
    time_limit: float = field(default=60.0, metadata={"help": "seconds for the heuristics and the search"})
    gap: float = field(default=1e-4, metadata={"help": "relative gap at which the search stops"})
    seed: int = field(default=0, metadata={"help": "SCIP's random seed"})
    threads: int = field(default=1, metadata={"help": "SCIP's thread count"})
    verbose: bool = field(default=False, metadata={"help": "print SCIP's log"})
    certify: bool = field(default=True, metadata={"help": "run the branch-and-bound (else: relaxation bound only)"})
    enumerate_below: int = field(default=2000, metadata={"help": "enumerate problems with at most this many "
                                                                 "full supports"})
    search: str = field(default="auto", metadata={"help": "branch on the fixed effects (one or nested factors), SCIP's "
                                                          "outer approximation, or auto"})
    refit: bool = field(default=True, metadata={"help": "report estimates refitted without the ridge on the "
                                                        "selected support (else: the selection's ridge estimates)"})

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are stored once, here
        ridge = check_real(self.ridge, "ridge", lambda v: v > 0, "above 0")
        if ridge < MIN_RIDGE:
            raise HierMIOError(
                f"ridge={self.ridge!r} is below {MIN_RIDGE:g}: so small a penalty leaves cluster effects and "
                "fixed effects numerically indistinguishable; use ridge >= 1e-6 (estimates on the selected "
                "support are nearly unpenalised from about 1e-3 on)")
        set_(self, "ridge", ridge)
        check_choice(self.selection, "selection", ("column", "cluster"))
        check_choice(self.na_action, "na_action", ("drop", "raise"))
        set_(self, "time_limit", check_real(self.time_limit, "time_limit", lambda v: v > 0, "above 0 (seconds)"))
        set_(self, "gap", check_real(self.gap, "gap", lambda v: 0 <= v < 1, "in [0, 1)"))
        set_(self, "seed", check_integer(self.seed, "seed", 0, _MAX_SEED))
        set_(self, "threads", check_integer(self.threads, "threads", 1, 1024))
        set_(self, "verbose", check_bool(self.verbose, "verbose"))
        set_(self, "certify", check_bool(self.certify, "certify"))
        set_(self, "enumerate_below", check_integer(self.enumerate_below, "enumerate_below", 0))
        check_choice(self.search, "search", ("auto", "fixed_effects", "outer_approximation"))
        set_(self, "refit", check_bool(self.refit, "refit"))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], caller: str, extra: tuple[str, ...] = ()) -> "FitControl":
        """A control from keyword options; a name that is neither an option nor in ``extra`` (the
        caller's own keywords) is an error that suggests the nearest one."""
        known = cls.names() + tuple(extra)
        for key in options:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise HierMIOError(f"{caller}() got an unknown option {key!r}{hint}; its options are "
                                   + ", ".join(known))
        return cls(**{k: v for k, v in options.items() if k in cls.names()})

    def fit_keywords(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The keywords of :func:`hiermio.fit`: these options, and ``weights`` / ``offset`` from
        ``options`` when the caller was given them (loops pass both on to every fit).

        >>> FitControl(seed=2).fit_keywords({"weights": "w", "ridge": 9})["weights"]
        'w'
        """
        return {**self.as_dict(), **{k: options[k] for k in VECTOR_OPTIONS if k in options}}

    def updated(self, **changes: Any) -> "FitControl":
        """A copy with ``changes`` applied (and validated)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
