"""Reports on a fitted model: the lme4-style summary.

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=3)
>>> print(fit.summary())  # doctest: +ELLIPSIS
L0-constrained mixed model fit by mixed-integer optimization [hiermio]
Formula: Reaction ~ Days + (1 | Subject)
...
Control: ridge 1, selection column, time_limit 60 s, gap 0.0001, seed 0, certify True, enumerate_below 2000, ...
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..core.exceptions import HierMIOError
from .inference import support_system

# a hiermio.fitting.results.MIOFit: read here, never imported (the results import this module)
FittedModel = Any

__all__ = ["Summary", "ranking", "plot_effects"]


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.4e}"


def _selected_levels_line(group: str, effects: pd.DataFrame, sizes: np.ndarray, show: int = 20) -> str:
    """The summary's line of selected levels: each level with the sign of every coefficient it
    has (``0`` where that coefficient was not selected) and its row count; "" if none is selected.

    >>> eff = pd.DataFrame({"(Intercept)": [0.0, 2.0, 0.0], "Time": [-0.2, 0.1, 0.0]}, index=["a", "b", "c"])
    >>> _selected_levels_line("Pig", eff, np.array([12, 12, 11]))
    'Selected levels of Pig (signs of (Intercept), Time; rows): a (0 -, 12), b (+ +, 12)'
    >>> _selected_levels_line("g", eff[["(Intercept)"]], np.array([5, 6, 7]))
    'Selected levels of g (sign, rows): b (+, 6)'
    """
    values = effects.to_numpy()
    on = (values != 0).any(axis=1)
    if not on.any():
        return ""
    signs = np.where(values > 0, "+", np.where(values < 0, "-", "0"))
    picks = [f"{lv} ({' '.join(sg)}, {n})" for lv, sg, n, sel in zip(effects.index, signs, sizes, on) if sel]
    more = f", ... {len(picks) - show} more" if len(picks) > show else ""
    what = "sign," if values.shape[1] == 1 else "signs of " + ", ".join(map(str, effects.columns)) + ";"
    return f"Selected levels of {group} ({what} rows): {', '.join(picks[:show])}{more}"


class Summary:
    """Printable lme4-style summary of an :class:`MIOFit`."""

    def __init__(self, fit: FittedModel):
        self.fit = fit

    def coefficients(self, kind: str = "robust") -> pd.DataFrame:
        """Fixed-effect table with ``kind`` standard errors (see :meth:`MIOFit.vcov`): the robust
        ones with t on clusters - 1 degrees of freedom, the conditional ones on the residual df."""
        f = self.fit
        fe = f.fixef()
        if len(fe) == 0:
            return pd.DataFrame(columns=["Estimate", "Std. Error", "t value", "Pr(>|t|)"])
        if kind == "robust" and not f.design.terms:
            kind = "conditional"  # no clusters: ordinary least squares
        se = np.sqrt(np.clip(np.diag(f.vcov(kind).to_numpy()), 0, None))
        df = f.robust().df if kind in ("robust", "support") else max(f.df_residual, 1)
        t = fe / se
        return pd.DataFrame({"Estimate": fe, "Std. Error": se, "t value": t,
                             "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)}, index=fe.index)

    def _se_note(self) -> str:
        f = self.fit
        if not f.design.terms:
            return "std. errors of ordinary least squares"
        cr = f.robust()
        c = cr.correction
        how = ("selection-aware" + (", capped: the threshold falls where clusters are dense" if c.capped else "")
               if c is not None and c.applied else f"given the selected support{'; ' + c.note if c and c.note else ''}")
        return (f"std. errors cluster-robust (CR1) by {cr.cluster}, {how}; {cr.n_clusters} clusters; "
                f"t on {cr.df} df")

    def __str__(self) -> str:
        f, d, cert = self.fit, self.fit.design, self.fit.certificate
        lines = ["L0-constrained mixed model fit by mixed-integer optimization [hiermio]",
                 f"Formula: {f.formula}"]
        lines.append(f"   Data: {d.n} rows" + (f" ({d.n_dropped} with missing values dropped)" if d.n_dropped else "")
                     + ("" if d.in_memory else f", read in partitions from {d.source.description}"))
        if not d.terms:
            lines.append("No random-effect terms: the fixed part alone was fitted (ordinary least squares).")
        else:
            b = f.budget
            unit = "columns" if b.selection == "column" else "levels"
            lines.append(f"Budget ({b.selection} selection): " + "; ".join(
                f"{n} <= {lam} of {size} {unit}" for n, lam, size in zip(b.groups, b.budgets, b.sizes)))
            mus = []
            for k, t in enumerate(d.terms):
                off = d.term_offsets()[k]
                mus += [f"{t.term.group}:{c} {_fmt(f.mu[off + i])}" for i, c in enumerate(t.coef_names)]
            lines.append(f"Ridge mu (= {f.ridge:g} x median per-level z'z): " + ", ".join(mus))
            lines.append(f"Solver: {cert.solver}")
            sg = cert.signal_gap
            signal = "" if sg != sg else f" ({100 * sg if sg > 1e-9 else 0:.3g}% of what the cluster effects explain)"
            lines.append(f"  status {cert.status}; objective {cert.primal:.8g}; bound {cert.dual:.8g}; "
                         f"gap {100 * cert.gap if cert.gap > 1e-9 else 0:.4g}%{signal}; {cert.nodes} nodes; "
                         f"{cert.cuts} cuts; {cert.time:.2f} s")
        lines += ["", "Random effects (fitted effects; levels that do not differ count as 0):"]
        vc = f.VarCorr()
        tab = pd.DataFrame({
            "Groups": vc.Groups.where(~vc.Groups.duplicated(), ""),
            "Name": vc.Name,
            "Variance": vc.Variance.map(_fmt),
            "Std.Dev.": vc["Std.Dev."].map(_fmt),
            "Corr": vc.Corr.map(lambda c: " ".join(f"{x:.2f}" for x in c)),
            "Nonzero": [f"{int(a)}/{int(b)}" if b == b else "" for a, b in zip(vc.Nonzero, vc.Levels)],
        })
        lines.append(tab.to_string(index=False))
        groups = ", ".join(f"{t.term.group_name}, {t.n_levels}" for t in d.group_terms)
        lines.append(f"Number of obs: {d.n}" + (f", groups:  {groups}" if groups else ""))
        ranef = f.ranef()
        for t in d.group_terms:
            line = _selected_levels_line(t.term.group_name, ranef[t.term.group_name], t.level_sizes)
            if line:
                lines.append(line)
        if d.terms:
            icc = f.icc.dropna()
            if len(icc):
                lines.append("ICC: " + ", ".join(f"{g} {v:.3f}" for g, v in icc.items()))
        what = "refitted without the ridge on the selected support" if f.control is None or f.control.refit \
            else "ridge estimates of the selection"
        lines += ["", f"Fixed effects ({what}; {self._se_note()}):"]
        lines.append(self.coefficients().to_string(float_format=_fmt))
        if f.control is not None:
            c = f.control
            lines += ["", f"Control: ridge {c.ridge:g}, selection {c.selection}, time_limit {c.time_limit:g} s, "
                          f"gap {c.gap:g}, seed {c.seed}, certify {c.certify}, enumerate_below {c.enumerate_below}, "
                          f"search {c.search}, refit {c.refit}"]
        if f.warnings:
            lines += ["", "Warnings:", *[f"  {w}" for w in f.warnings]]
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


def ranking(fit: FittedModel, stability: pd.DataFrame | None = None, reference=None) -> dict[str, pd.DataFrame]:
    """Which clusters are atypical: one table per grouping factor, strongest evidence first.

    "Atypical" means the strongest evidence of a deviation from the population: the objective a
    level's effect buys (``gain``, the fall in the certified L0-ridge objective when its columns are
    freed, about n_k x deviation^2), so a large cluster with a moderate deviation outranks a tiny
    cluster with a large one. Columns: the level's rows (``size``); its refitted effects (one column
    per coefficient) and their model-based standard errors (``se ...``: sigma^2 (D'D)^{-1} on the
    support; the cluster-robust ones are degenerate for a cluster's own effect); ``sign``: the
    sign of each coefficient in column order (``"0 -"``: only the second is selected); ``selected``;
    ``gain`` (for an unselected level: what freeing it would buy); ``frequency`` from
    :func:`hiermio.stability` when given; and ``lme4 ...``, the BLUPs of a reference :func:`hiermio.lmer` fit, joined by level.

    >>> import hiermio as hm
    >>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=3)
    >>> table = fit.ranking()["Subject"]
    >>> table.selected.head(3).tolist(), bool(table.gain.is_monotonic_decreasing)
    ([True, True, True], True)
    """
    if stability is not None and hasattr(stability, "frequencies"):  # a Stability result itself
        stability = stability.frequencies
    if stability is not None and not isinstance(stability, pd.DataFrame):
        raise HierMIOError(f"stability must be hiermio.stability(...) or its .frequencies, got {type(stability).__name__}")
    if reference is not None and not callable(getattr(reference, "ranef", None)):
        raise HierMIOError(f"reference must be a fit with ranef(), such as hiermio.lmer(...), got {type(reference).__name__}")
    d, problem = fit.design, fit.problem
    s = np.asarray(fit.support, dtype=float)
    base = problem.value(s)
    se_all = _effect_standard_errors(fit)
    out = {}
    for term0 in d.group_terms:
        name = term0.term.group_name
        ks = [k for k, t in enumerate(d.terms) if t.term.group == term0.term.group]
        offsets = d.term_offsets()
        frame = pd.DataFrame(index=pd.Index(term0.levels, name=name))
        frame["size"] = term0.level_sizes
        gains = np.zeros(term0.n_levels)
        for level in range(term0.n_levels):
            cols = np.concatenate([offsets[k] + level * d.terms[k].q + np.arange(d.terms[k].q) for k in ks])
            units = problem.units_of_columns(cols)
            toggled = s.copy()
            if s[units].any():
                toggled[units] = 0.0
                gains[level] = problem.value(toggled) - base
            else:
                toggled[units] = 1.0
                gains[level] = base - problem.value(toggled)
        for k in ks:
            t = d.terms[k]
            eff = fit._term_effects(k)
            se = se_all[offsets[k]: offsets[k] + t.n_columns].reshape(t.n_levels, t.q)
            suffix = f" [{t.term.label}]" if len(ks) > 1 else ""
            for j, c in enumerate(t.coef_names):
                frame[f"{c}{suffix}"] = eff.iloc[:, j].to_numpy()
                frame[f"se {c}{suffix}"] = se[:, j]
        # every coefficient's sign, as the summary lists them ("0 -": only the slope was selected)
        effects = np.hstack([fit._term_effects(k).to_numpy() for k in ks])
        signs = np.where(effects > 0, "+", np.where(effects < 0, "-", "0"))
        frame["sign"] = [" ".join(row) if (row != "0").any() else "" for row in signs]
        frame["selected"] = np.any([(fit._term_effects(k) != 0).any(axis=1).to_numpy() for k in ks], axis=0)
        frame["gain"] = gains
        if stability is not None:
            cols = [c for c in stability.columns if any(c == d.terms[k].term.label for k in ks)]
            if cols:
                frame["frequency"] = stability[cols].max(axis=1).reindex(frame.index).to_numpy()
        if reference is not None:
            blups = reference.ranef().get(name)
            if blups is not None:
                for c in blups.columns:
                    frame[f"lme4 {c}"] = blups[c].reindex(frame.index).to_numpy()
        out[name] = frame.sort_values("gain", ascending=False, kind="stable")
    return out


def _effect_standard_errors(fit: FittedModel) -> np.ndarray:
    """Model-based standard errors of the cluster effects on the support (NaN off it)."""
    d = fit.design
    cols = np.flatnonzero(fit.gamma != 0)
    out = np.full(d.n_columns, np.nan)
    if len(cols) == 0:
        return out
    A = support_system(fit)
    cov = np.linalg.solve(A, np.eye(A.shape[0])) * fit.sigma**2
    out[cols] = np.sqrt(np.clip(np.diag(cov)[d.p:], 0, None))
    return out


def plot_effects(fit: FittedModel, group: str | None = None, coef: str = "(Intercept)", level: float = 0.95):
    """Caterpillar plot of one grouping factor's effects (R's ``dotplot(ranef(fit))``): selected
    levels with their refitted effect and a ``level`` interval from the model-based SE, unselected
    levels at zero, marked apart."""
    import matplotlib.pyplot as plt
    from scipy import stats as st

    table = ranking(fit)
    name = group if group is not None else next(iter(table))
    if name not in table:
        raise HierMIOError(f"group must be one of {list(table)}, got {name!r}")
    t = table[name]
    col = next((c for c in t.columns if c == coef or c.startswith(f"{coef} [")), None)
    if col is None:
        raise HierMIOError(f"coef must be one of the effects of {name!r}: "
                           f"{[c for c in t.columns if c.startswith('(')]}; got {coef!r}")
    t = t.sort_values(col, kind="stable")
    q = st.norm.ppf((1 + level) / 2)
    y = np.arange(len(t))
    on = t.selected.to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, max(3.0, 0.17 * len(t) + 1.2)))
    ax.axvline(0, color="grey", lw=0.8)
    ax.errorbar(t[col][on], y[on], xerr=q * t[f"se {col}"][on], fmt="o", color="C3", capsize=2,
                label=f"selected: refitted effect, {100 * level:g}% interval")
    ax.scatter(t[col][~on], y[~on], marker="x", color="grey", label="not selected: the population (0)")
    labels = [str(v) for v in t.index]
    if len(t) <= 60:
        ax.set_yticks(y, labels, fontsize=7 if len(t) > 30 else 9)
    else:
        ax.set_yticks([])
    ax.set_xlabel(f"{col} effect")
    ax.set_ylabel(name)
    ax.set_title(f"{name}: {int(on.sum())} of {len(t)} levels differ from the population")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
