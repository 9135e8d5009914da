"""Rerun the paper's simulation study: every scenario, four methods, our numbers beside the paper's.

One replicate of one scenario (:func:`run_replicate`) draws data by :func:`simulate_clustered`,
fits OLS, ridge, lme4 and MIO on the training + validation rows, and scores them:

- OLS and ridge (``RidgeCV``, leave-one-out over a log grid of penalties) on the fixed part;
- lme4's LMEM ``y ~ x1 + ... + (1 | g)`` (REML) through :func:`hiermio.lmer`;
- MIO with the budget chosen on the validation rows (a warm-started screening
  :func:`hiermio.path` over 0..K on the training rows), then refit and certified on training +
  validation at that budget, as in the paper's section 2.2.1.

Test rows are scored as rows of new clusters (the paper's section 3.2): MIO by the soft rule,
lme4 at population level; ``test_mse_known`` scores them with their clusters known.
:func:`run_study` runs the replicates through joblib and :class:`Study` turns them into the
paper's tables (``Study.table``), figures and direction checks, and writes them to a folder.

>>> study = run_study(tables=["A1"], reps=1, scales=["low"], levels={"sparse": [0.5]},
...                   methods=["ols", "mio"], progress=False)
>>> t = study.table("A1")
>>> list(t.columns), bool(t.loc[0.5, "mio"] < t.loc[0.5, "ols"])
(['ols', 'ols (paper)', 'mio', 'mio (paper)', 'reps'], True)
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from joblib import delayed

from ..core.control import FitControl
from ..formula.design import build_design
from ..core.exceptions import HierMIOError, HierMIOWarning
from ..comparisons.methods import METHODS as REGISTRY
from .published import FIGURES, PAPER_TABLES, TABLE_ORDER
from ..core.parallel import run_parallel
from .simulate import (GAUSSIAN_VARIANCES, SCALES, SPARSE_SHARES, beta_error, gamma_error, simulate_clustered,
                       sparsity_recovery, true_icc, zeros_recovered)

__all__ = ["StudyConfig", "Study", "run_study", "run_replicate", "study_scenarios", "parse_tables",
           "METHODS", "ICC_TARGETS"]

METHODS = tuple(REGISTRY)  # the compared methods, fitted through hiermio.comparisons.methods
ICC_TARGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_FAMILY_LEVELS = {"sparse": SPARSE_SHARES, "gaussian": GAUSSIAN_VARIANCES, "icc": ICC_TARGETS}


@dataclass(frozen=True)
class StudyConfig:
    """The choices behind a run; the paper leaves ``noise``, ``split`` and MIO's ``ridge`` open.

    ``noise`` is the residual SD. The paper does not state it; its LMEM beta errors (about 1e-3
    summed over 35 slopes from 560 rows) imply an SD near 0.1, which is the default. MIO's ``ridge``
    and ``refit`` are hiermio's defaults: the estimates are refitted without the ridge on the
    selected support, so the ridge no longer leaks into beta through the confounding (with
    ``refit=False`` it does: ``benchmarks/ridge_study.py``).
    """

    reps: int = 10
    noise: float = 0.1
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    ridge: float = FitControl.ridge
    refit: bool = FitControl.refit
    time_limit: float = 20.0
    seed: int = 0
    methods: tuple[str, ...] = METHODS


def parse_tables(spec: str | Iterable[str]) -> list[str]:
    """Table labels from ``"1,2,A1..A10"`` (ranges follow the paper's order), or ``"all"``.

    >>> parse_tables("1,3,A8..A10")
    ['1', '3', 'A8', 'A9', 'A10']
    """
    tokens = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if str(t).strip()]
    out: list[str] = []
    for tok in tokens:
        if tok == "all":
            out += TABLE_ORDER
        elif ".." in tok:
            a, b = (x.strip() for x in tok.split("..", 1))
            for end in (a, b):
                if end not in TABLE_ORDER:
                    raise HierMIOError(f"unknown table {end!r} in {tok!r}; tables are {', '.join(TABLE_ORDER)}")
            i, j = TABLE_ORDER.index(a), TABLE_ORDER.index(b)
            if i > j:
                raise HierMIOError(f"table range {tok!r} runs backwards")
            out += TABLE_ORDER[i : j + 1]
        elif tok in TABLE_ORDER:
            out.append(tok)
        else:
            raise HierMIOError(f"unknown table {tok!r}; tables are {', '.join(TABLE_ORDER)}")
    return list(dict.fromkeys(out))


def study_scenarios(tables: Sequence[str], scales: Sequence[str], figures: bool = True,
                    levels: dict[str, Sequence[float]] | None = None) -> list[dict]:
    """The (family, scale, level) scenarios the tables and figures need, within ``scales``.

    >>> len(study_scenarios(["1"], ["high"], figures=False)), len(study_scenarios(["1"], ["high"]))
    (10, 22)
    """
    bad = [s for s in scales if s not in SCALES]
    if bad:
        raise HierMIOError(f"unknown scale(s) {bad}; scales are {list(SCALES)}")
    bad = sorted(set(levels or {}) - set(_FAMILY_LEVELS))
    if bad:
        raise HierMIOError(f"levels has unknown scenario famil(ies) {bad}; families are {list(_FAMILY_LEVELS)}")
    need: set[tuple[str, str]] = set()
    for label in tables:
        t = PAPER_TABLES[label]
        for scale in (SCALES if t["scale"] == "all" else [t["scale"]]):
            need.add((t["effects"], scale))
    if figures:
        for scale in FIGURES.values():
            need |= {("gaussian", scale), ("sparse", scale)}
    out = []
    for family in ("sparse", "gaussian", "icc"):
        for scale in SCALES:
            if (family, scale) in need and scale in scales:
                grid = (levels or {}).get(family, _FAMILY_LEVELS[family])
                out += [{"family": family, "scale": scale, "level": float(v)} for v in grid]
    return out


def _split(sim):
    d = sim.data
    return d[d.split == "train"], d[d.split == "validation"], d[d.split == "test"]


def _row(scenario, rep, method, icc_target, **values) -> dict:
    return {**scenario, "rep": rep, "method": method, "icc_true": icc_target, **values}


def _effect_metrics(sim, fixef: pd.Series, ranef: dict[str, pd.DataFrame], icc: float) -> dict:
    """The recovery metrics of a method with cluster effects (lme4, MIO), from its fixef and ranef."""
    effects = ranef["g"]["(Intercept)"]
    effects.index = effects.index.astype(int)
    return {"beta_error": beta_error(sim, fixef), "gamma_error": gamma_error(sim, effects, fixef["(Intercept)"]),
            "sparsity_recovery": sparsity_recovery(sim, effects), "zeros_recovered": zeros_recovered(sim, effects),
            "icc": icc}


def run_replicate(scenario: dict, rep: int, config: StudyConfig) -> list[dict]:
    """Fit every method on one simulated data set; one row of metrics per method.

    >>> rows = run_replicate({"family": "sparse", "scale": "low", "level": 0.5}, 0, StudyConfig(methods=("ols",)))
    >>> rows[0]["method"], rows[0]["beta_error"] > 0, "gamma_error" in rows[0]
    ('ols', True, False)
    """
    from ..workflow.path import path

    family, scale, level = scenario["family"], scenario["scale"], scenario["level"]
    seed = config.seed * 1_000_003 + rep * 7919 + int(round(level * 1000)) * 31 + list(SCALES).index(scale) \
        + {"sparse": 0, "gaussian": 3, "icc": 5}[family] * 100_000
    if family == "icc":  # effects N(0, 1), noise set so the population ICC is the target
        sim = simulate_clustered(scale, "gaussian", 1.0, noise=float(np.sqrt((1 - level) / level)),
                                 split=config.split, seed=seed)
        icc_target = level
    else:
        sim = simulate_clustered(scale, family, level, noise=config.noise, split=config.split, seed=seed)
        icc_target = true_icc(sim)
    train, valid, test = _split(sim)
    both = pd.concat([train, valid])
    test_new = test.assign(g=test.g + 10_000)  # the same rows as members of clusters never seen
    K = len(sim.gamma)
    rows = []

    def mse(pred) -> float:
        return float(np.mean((test.y.to_numpy() - np.asarray(pred)) ** 2))

    design = build_design(sim.formula, both)
    for method in config.methods:
        t0 = time.perf_counter()
        options, extra = {}, {}
        if method == "mio":
            # the budget is chosen on the validation rows by a screening path; the fit at it is certified.
            # the study tabulates every fit's gap; warnings from hundreds of replicates would bury it
            opts = {"ridge": config.ridge, "refit": config.refit, "time_limit": config.time_limit}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", HierMIOWarning)
                sweep = path(sim.formula, train, range(0, K + 1), validation=valid, certify=False, progress=False,
                             **opts)
            options = {"budget": int(sweep.table.validation_mse.idxmin()), "new_levels": "soft", **opts}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HierMIOWarning)
            res = REGISTRY[method].fit(sim.formula, both, design, **options)
        if not res.ok:
            unavailable = method == "lmer" and res.model is None  # R could not be started at all
            rows.append(_row(scenario, rep, method, icc_target, status="unavailable" if unavailable else "failed",
                             message=res.messages[0] if res.messages else ""))
            continue
        if method == "mio":
            extra = {"budget": options["budget"], "gap": res.model.certificate.gap,
                     "solve_s": res.model.timings["total"] - res.model.timings["design"]}
        metrics = (_effect_metrics(sim, res.fixef, res.ranef, float(res.icc)) if res.ranef
                   else {"beta_error": beta_error(sim, res.fixef)})
        rows.append(_row(scenario, rep, method, icc_target, status=res.status, **extra, **metrics,
                         test_mse=mse(res.predict(test_new)), test_mse_known=mse(res.predict(test)),
                         time_s=time.perf_counter() - t0))
    return rows


@dataclass
class Study:
    """Raw replicate metrics and what the paper reports; tables, figures and checks come from here."""

    raw: pd.DataFrame
    config: StudyConfig
    tables: list[str]
    elapsed_s: float
    n_jobs: int | None = None
    backend: str = "loky"
    notes: list[str] = field(default_factory=list)

    def _cell(self, family: str, scale: str, metric: str, method: str) -> pd.Series:
        r = self.raw
        if metric not in r:
            return pd.Series(dtype=float)
        sel = r[(r.family == family) & (r.scale == scale) & (r.method == method)]
        return sel.groupby("level")[metric].mean()

    def table(self, label: str) -> pd.DataFrame:
        """The paper's table ``label``: our mean over replicates beside the paper's value."""
        if label not in PAPER_TABLES:
            raise HierMIOError(f"unknown table {label!r}; tables are {', '.join(TABLE_ORDER)}")
        spec = PAPER_TABLES[label]
        levels = list(spec["rows"])
        all_scales = spec["scale"] == "all"  # A5: its columns are scales, of MIO's fits
        columns = [c for c in spec["columns"] if all_scales or c in self.config.methods]
        out = pd.DataFrame(index=pd.Index(levels, name="level"))
        if not columns:  # none of the table's methods was run
            return out.iloc[:0]
        paper = pd.DataFrame(spec["rows"], index=list(spec["columns"])).T.reindex(levels)
        for col in columns:
            scale, method = (col, "mio") if all_scales else (spec["scale"], col)
            out[col] = self._cell(spec["effects"], scale, spec["metric"], method).reindex(levels)
            out[f"{col} (paper)"] = paper[col].to_numpy()
        r = self.raw
        sel = r[(r.family == spec["effects"]) & (r.method == ("mio" if all_scales else columns[0]))]
        if not all_scales:
            sel = sel[sel.scale == spec["scale"]]
        out["reps"] = sel.groupby("level").rep.nunique().reindex(levels).fillna(0).astype(int)
        return out.dropna(how="all", subset=[c for c in out.columns if not c.endswith("(paper)") and c != "reps"])

    def figure(self, label: str):
        """Test MSE by method against the level, Gaussian effects left and sparse right (paper's layout)."""
        import matplotlib.pyplot as plt

        scale = FIGURES[label]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for ax, family, xlabel in ((axes[0], "gaussian", "variance of the cluster effects"),
                                   (axes[1], "sparse", "share of zero cluster effects")):
            for method in self.config.methods:
                s = self._cell(family, scale, "test_mse", method).dropna()
                if len(s):
                    ax.plot(s.index, s.to_numpy(), marker="o", label=method)
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test MSE (new-cluster rule)")
            ax.set_title(f"{family}, {scale}")
        axes[1].legend()
        fig.suptitle(f"Figure {label}: predictive MSE, {scale} scale ({self.config.reps} replicate(s))")
        fig.tight_layout()
        return fig

    def by_scale(self) -> pd.DataFrame:
        """Per method and scale, over the sparse and Gaussian scenarios: mean beta error, the share
        of true zeros estimated zero (sparse scenarios), and for MIO the certified fit's mean solve
        time and largest gap. The numbers the default ridge was chosen from (``benchmarks/ridge_study.py``).

        >>> study = run_study(tables=["A1"], reps=1, scales=["low"], levels={"sparse": [0.5]},
        ...                   methods=["mio"], progress=False)
        >>> list(study.by_scale().columns)
        ['beta_error', 'sparsity_recovery', 'solve_s', 'max_gap', 'data_sets']
        """
        r = self.raw[self.raw.family.isin(["sparse", "gaussian"]) & (self.raw.status != "unavailable")]
        if "status" in r:
            r = r[r.status != "failed"]
        keys = ["method", "scale"]
        out = r.groupby(keys).beta_error.mean().to_frame()
        sparse = r[r.family == "sparse"]
        out["sparsity_recovery"] = (sparse.groupby(keys).sparsity_recovery.mean() if "sparsity_recovery" in r
                                    else np.nan)
        out["solve_s"] = r.groupby(keys).solve_s.mean() if "solve_s" in r else np.nan
        out["max_gap"] = r.groupby(keys).gap.max() if "gap" in r else np.nan
        out["data_sets"] = r.groupby(keys).size()
        order = [s for s in SCALES if s in set(r.scale)]
        return out.reindex(pd.MultiIndex.from_product([out.index.levels[0], order], names=keys)).dropna(how="all")

    def checks(self) -> pd.DataFrame:
        """The paper's claims, tested on this run: which hold, with the figures behind them."""
        r, rows = self.raw, []
        for scale in SCALES:
            sub = r[(r.scale == scale) & r.family.isin(["sparse", "gaussian"])]
            if not {"ols", "mio"} <= set(sub.method) or "beta_error" not in sub:
                continue
            m = sub.groupby("method").beta_error.mean()
            rows.append({"claim": f"MIO's beta error is below OLS's ({scale})", "holds": bool(m["mio"] < m["ols"]),
                         "evidence": f"mean over scenarios: MIO {m['mio']:.4g}, OLS {m['ols']:.4g}"})
            if "lmer" in m and np.isfinite(m["lmer"]):
                rows.append({"claim": f"MIO's beta error is below lme4's ({scale})", "holds": bool(m["mio"] < m["lmer"]),
                             "evidence": f"mean over scenarios: MIO {m['mio']:.4g}, lme4 {m['lmer']:.4g}"})
            s90 = r[(r.scale == scale) & (r.family == "sparse") & np.isclose(r.level, 0.9) & (r.method == "mio")]
            if len(s90):
                v = float(s90.sparsity_recovery.mean())
                rows.append({"claim": f"MIO sets most true zeros to zero at 90% sparsity ({scale})",
                             "holds": bool(v >= 0.7), "evidence": f"share of true zeros estimated zero: {v:.3f}"})
        return pd.DataFrame(rows, columns=["claim", "holds", "evidence"])

    def write(self, out: str | Path) -> list[Path]:
        """CSV and Markdown per table, PNG per figure, the raw metrics and a README; returns the files."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = [out / "raw.csv"]
        self.raw.to_csv(files[0], index=False)
        md = ["# hiermio reproduce: the paper's simulation study", "",
              f"{len(self.raw)} method fits over {self.raw.groupby(['family', 'scale', 'level', 'rep']).ngroups} "
              f"simulated data sets in {self.elapsed_s:.1f} s (n_jobs={self.n_jobs}, backend {self.backend}).", "",
              "Configuration: " + json.dumps(asdict(self.config)), ""]
        md += [f"- {n}" for n in self.notes]
        for label in self.tables:
            t = self.table(label)
            if t.empty:
                continue
            files += [out / f"table_{label}.csv", out / f"table_{label}.md"]
            t.to_csv(files[-2])
            text = f"## Table {label}. {PAPER_TABLES[label]['title']} ({PAPER_TABLES[label]['metric']})\n\n" \
                + markdown_table(t) + "\n"
            files[-1].write_text(text)
            md += ["", text]
        for label, scale in FIGURES.items():
            if scale in set(self.raw.scale):
                import matplotlib.pyplot as plt

                fig = self.figure(label)
                files.append(out / f"figure_{label}.png")
                fig.savefig(files[-1], dpi=100)
                plt.close(fig)
                md += ["", f"![Figure {label}](figure_{label}.png)"]
        checks = self.checks()
        files.append(out / "checks.csv")
        checks.to_csv(files[-1], index=False)
        md += ["", "## The paper's claims on this run", "", markdown_table(checks.set_index("claim"))]
        files.append(out / "README.md")
        files[-1].write_text("\n".join(md) + "\n")
        return files


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A pipe table (numbers to ``digits`` significant figures, missing as blank).

    >>> print(markdown_table(pd.DataFrame({"mio": [0.000123456]}, index=pd.Index([0.9], name="level"))))
    | level | mio |
    |---|---|
    | 0.9 | 0.0001235 |
    """
    def fmt(v) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (int, np.integer)):
            return str(v)
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}g}"
        return str(v)

    head = [str(df.index.name or ""), *map(str, df.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([fmt(idx), *(fmt(v) for v in row.to_numpy())]) + " |")
    return "\n".join(lines)


def run_study(
    tables: str | Sequence[str] = "all",
    reps: int = 10,
    scales: Sequence[str] = tuple(SCALES),
    n_jobs: int | None = None,
    backend: str = "loky",
    progress: bool | None = None,
    levels: dict[str, Sequence[float]] | None = None,
    **config,
) -> Study:
    """Run the replicates the ``tables`` (and Figures 2, A1, A2) need over ``scales``.

    ``backend="dask"`` runs them on a local dask.distributed cluster through joblib; the results
    do not depend on the backend. Extra keywords set :class:`StudyConfig` fields; ``levels``
    thins a family's grid (``{"sparse": [0.9, 0.5]}``).
    """
    labels = parse_tables(tables)
    if int(reps) < 1:
        raise HierMIOError(f"reps must be at least 1, got {reps!r}")
    methods = tuple(config.pop("methods", METHODS))
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise HierMIOError(f"unknown method(s) {bad}; methods are {list(METHODS)}")
    unknown = set(config) - set(StudyConfig.__dataclass_fields__)
    if unknown:
        raise HierMIOError(f"unknown study option(s) {sorted(unknown)}")
    cfg = StudyConfig(reps=int(reps), methods=methods, **config)
    scenarios = study_scenarios(labels, list(scales), levels=levels)
    jobs = [delayed(run_replicate)(sc, rep, cfg) for sc in scenarios for rep in range(cfg.reps)]
    t0 = time.perf_counter()
    if backend == "loky":
        results = run_parallel(jobs, n_jobs, progress, desc="scenarios")
    elif backend == "dask":
        import joblib
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=max(1, n_jobs or 1), threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster), joblib.parallel_backend("dask"):
            results = run_parallel(jobs, n_jobs, progress, desc="scenarios")
    else:
        raise HierMIOError(f"backend must be 'loky' or 'dask', got {backend!r}")
    raw = pd.DataFrame([row for rows in results for row in rows])
    notes = [f"{int((raw.status == 'unavailable').sum())} lme4 fits skipped: R with lme4 is not available"] \
        if "status" in raw and (raw.status == "unavailable").any() else []
    return Study(raw, cfg, labels, time.perf_counter() - t0, n_jobs, backend, notes)
