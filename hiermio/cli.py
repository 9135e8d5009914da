"""Command line: ``hiermio demo``, ``hiermio fit FORMULA data.csv --budget N``, ``hiermio compare``
and ``hiermio reproduce`` (the paper's simulation study)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

import os
import pandas as pd

from .fitting.api import fit
from .core.control import FitControl
from .data.datasets import load_dataset
from .core.exceptions import HierMIOError, Interrupted

__all__ = ["main", "side_by_side"]


def side_by_side(mio, ref) -> pd.DataFrame:
    """Fixed effects, residual SD and ICC of an MIO fit and an lme4 fit, one column each."""
    fe = pd.DataFrame({"MIO": mio.fixef(), "lme4": ref.fixef()})
    extra = pd.DataFrame(
        {"MIO": [mio.sigma, *mio.icc.to_numpy()], "lme4": [ref.sigma, *ref.icc.reindex(mio.icc.index).to_numpy()]},
        index=["sigma", *[f"ICC {g}" for g in mio.icc.index]],
    )
    return pd.concat([fe, extra])


def _demo(args: argparse.Namespace) -> int:
    df = load_dataset("sleepstudy")
    formula = "Reaction ~ Days + (1 + Days | Subject)"
    print(f"hiermio demo: lme4's sleepstudy ({len(df)} rows, {df.Subject.nunique()} subjects)")
    print(f"formula: {formula}; budget: at most {args.budget} nonzero subject effects per term\n")
    mio = fit(formula, df, budget=args.budget, **_control_options(args))
    print(mio.summary())
    print()
    from .comparisons.lme4 import RNotAvailableError, lmer

    try:
        ref = lmer(formula, df)
    except RNotAvailableError as exc:
        print(f"lme4 side of the comparison skipped: {exc}")
        return 0
    print(f"lme4::lmer (REML): status {ref.status}, logLik {ref.logLik:.3f}, {ref.time:.2f} s"
          + (f"; messages: {ref.messages}" if ref.messages else ""))
    print("\nSide by side:")
    print(side_by_side(mio, ref).to_string(float_format=lambda v: f"{v:.4g}"))
    eff = pd.concat({"MIO": mio.ranef()["Subject"], "lme4": ref.ranef()["Subject"].set_axis(
        mio.ranef()["Subject"].index)}, axis=1)
    print("\nSubject effects (MIO: zero = does not differ from the population):")
    print(eff.to_string(float_format=lambda v: f"{v:.2f}"))
    return 0


def _read_csv(path: str, what: str) -> pd.DataFrame:
    """The CSV file at ``path``, or an error that says what is wrong with it."""
    if os.path.isdir(path):
        raise HierMIOError(f"{what} {path!r} is a directory; give a CSV file")
    if not os.path.exists(path):
        raise HierMIOError(f"{what} {path!r} does not exist")
    try:
        frame = pd.read_csv(path)
        # whole numbers with empty cells are read as floats, which cannot hold ids above 2**53
        # exactly: such columns are read again as nullable integers
        inexact = [c for c in frame.columns if frame[c].dtype == float and frame[c].isna().any()
                   and (frame[c].abs() > 2**53).any()]
        if inexact:
            exact = pd.read_csv(path, usecols=inexact, dtype_backend="numpy_nullable")
            for c in inexact:
                if pd.api.types.is_integer_dtype(exact[c].dtype):
                    frame[c] = exact[c]
        return frame
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise HierMIOError(f"{what} {path!r} cannot be read as CSV: {exc}") from exc


def _budget_arg(text: str):
    """--budget: a whole number, or a JSON object of whole numbers by term or factor."""
    text = text.strip()
    try:
        return json.loads(text) if text.startswith("{") else int(text)
    except ValueError:
        raise HierMIOError(f"--budget must be a whole number or JSON like '{{\"(1 | g)\": 3}}', got {text!r}") from None


def _fit_data(path: str):
    """The fit's data: a parquet file or directory is read in partitions (never whole), else a CSV."""
    if path.endswith((".parquet", ".pq")) or (os.path.isdir(path) and any(
            f.endswith((".parquet", ".pq")) for f in os.listdir(path))):
        return path
    return _read_csv(path, "data file")


def _fit(args: argparse.Namespace) -> int:
    df = _fit_data(args.data)
    budget = _budget_arg(args.budget)
    res = fit(args.formula, df, budget=budget, weights=args.weights, offset=args.offset, **_control_options(args))
    print(res.summary())
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .comparisons.comparison import compare

    df = _read_csv(args.data, "data file")
    test = _read_csv(args.test, "test file") if args.test else None
    budget = _budget_arg(args.budget)
    cmp = compare(args.formula, df, test=test, methods=args.methods.split(","), budget=budget,
                  split=None if test is not None else args.split, test_size=args.test_size,
                  random_state=args.seed, **_control_options(args),
                  **{k: v for k, v in (("weights", args.weights), ("offset", args.offset)) if v})
    print(cmp)
    if args.plot:
        cmp.plot().savefig(args.plot, dpi=110)
        print(f"plot written to {args.plot}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .paper.reproduce import run_study

    scales = ["low", "medium", "high"] if args.scale == "all" else [args.scale]
    study = run_study(tables=args.tables, reps=args.reps, scales=scales, n_jobs=args.jobs, backend=args.backend,
                      noise=args.noise, time_limit=args.time_limit, seed=args.seed)
    files = study.write(args.out)
    for label in study.tables:
        t = study.table(label)
        if not t.empty:
            print(f"Table {label}:\n{t.to_string(float_format=lambda v: f'{v:.4g}')}\n")
    print(study.checks().to_string(index=False))
    print(f"\n{len(files)} files written to {args.out} in {study.elapsed_s:.1f} s")
    return 0 if study.checks().holds.all() or not args.strict else 1


_CHOICES = {"selection": ["column", "cluster"], "na_action": ["drop", "raise"]}


def _add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option of :class:`FitControl`, with its default (see ``hiermio.fit`` for meanings)."""
    for f in fields(FitControl):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=f.metadata["help"])
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, choices=_CHOICES.get(f.name),
                                help=f"{f.metadata['help']} (default {f.default})")


def _control_options(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in fields(FitControl)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hiermio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="fit lme4's sleepstudy by MIO and by lme4, side by side")
    d.add_argument("--budget", type=int, default=5)
    _add_control_arguments(d)
    f = sub.add_parser("fit", help="fit FORMULA on a CSV file")
    f.add_argument("formula")
    f.add_argument("data", help="CSV file, or a parquet file or directory (read in partitions, never whole)")
    f.add_argument("--budget", required=True, help="an integer, or JSON like '{\"(1 | g)\": 3}'")
    _add_control_arguments(f)
    f.add_argument("--weights", help="column of prior weights (lme4's weights=)")
    f.add_argument("--offset", help="column of a known offset (lme4's offset=)")
    c = sub.add_parser("compare", help="OLS, ridge, lme4 and MIO on one formula, side by side")
    c.add_argument("formula")
    c.add_argument("data", help="CSV file (training data, or all data with --split)")
    c.add_argument("--test", help="CSV file to score on")
    c.add_argument("--split", choices=["within", "cluster"], help="carve a test set out of the data")
    c.add_argument("--test-size", type=float, default=0.2)
    c.add_argument("--budget", default="5", help="MIO budget: an integer or JSON by term")
    c.add_argument("--methods", default="ols,ridge,lmer,mio")
    _add_control_arguments(c)  # --seed also seeds the split
    c.add_argument("--plot", help="write the comparison plot to this PNG file")
    c.add_argument("--weights", help="column of prior weights (lme4's weights=)")
    c.add_argument("--offset", help="column of a known offset (lme4's offset=)")
    r = sub.add_parser("reproduce", help="rerun the paper's simulation study; tables beside the paper's values")
    r.add_argument("--tables", default="all", help="labels and ranges in the paper's order, e.g. 1,2,A1..A10")
    r.add_argument("--reps", type=int, default=10, help="replicates per scenario")
    r.add_argument("--scale", choices=["low", "medium", "high", "all"], default="all")
    r.add_argument("--jobs", type=int, default=None, help="parallel workers (joblib n_jobs)")
    r.add_argument("--backend", choices=["loky", "dask"], default="loky")
    r.add_argument("--out", default="reproduce-out", help="folder for the CSV, Markdown and PNG files")
    r.add_argument("--noise", type=float, default=0.1, help="residual SD (the paper does not state it)")
    r.add_argument("--time-limit", type=float, default=20.0, help="seconds per MIO fit")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--strict", action="store_true", help="exit 1 when a claim of the paper does not hold")
    args = parser.parse_args(argv)
    try:
        return {"demo": _demo, "fit": _fit, "compare": _compare, "reproduce": _reproduce}[args.command](args)
    except (HierMIOError, FileNotFoundError, ValueError) as exc:
        print(f"hiermio: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"hiermio: {exc.args[0] if exc.args else 'interrupted'}", file=sys.stderr)
        if exc.result is not None and args.command == "fit":
            print(exc.result.summary())
        return 130
