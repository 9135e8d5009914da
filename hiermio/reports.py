"""Reports on a fitted model: the lme4-style summary.

>>> import hiermio as hm
>>> fit = hm.fit("Reaction ~ Days + (1 | Subject)", hm.load_dataset("sleepstudy"), budget=3)
>>> print(fit.summary())  # doctest: +ELLIPSIS
L0-constrained mixed model fit by mixed-integer optimization [hiermio]
Formula: Reaction ~ Days + (1 | Subject)
...
Control: ridge 0.1, selection column, time_limit 60 s, gap 0.0001, seed 0, certify True, enumerate_below 2000, refit True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from .inference import cluster_robust

if TYPE_CHECKING:
    from .results import MIOFit

__all__ = ["Summary"]


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.4e}"


class Summary:
    """Printable lme4-style summary of an :class:`MIOFit`."""

    def __init__(self, fit: MIOFit):
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
        df = cluster_robust(f).df if kind == "robust" else max(f.df_residual, 1)
        t = fe / se
        return pd.DataFrame({"Estimate": fe, "Std. Error": se, "t value": t,
                             "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)}, index=fe.index)

    def _se_note(self) -> str:
        f = self.fit
        if not f.design.terms:
            return "std. errors of ordinary least squares"
        cr = cluster_robust(f)
        return f"std. errors cluster-robust (CR1) by {cr.cluster}, {cr.n_clusters} clusters; t on {cr.df} df"

    def __str__(self) -> str:
        f, d, cert = self.fit, self.fit.design, self.fit.certificate
        lines = ["L0-constrained mixed model fit by mixed-integer optimization [hiermio]",
                 f"Formula: {f.formula}"]
        lines.append(f"   Data: {d.n} rows" + (f" ({d.n_dropped} with missing values dropped)" if d.n_dropped else ""))
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
            lines.append(f"  status {cert.status}; objective {cert.primal:.8g}; bound {cert.dual:.8g}; "
                         f"gap {100 * cert.gap if cert.gap > 1e-9 else 0:.4g}%; {cert.nodes} nodes; {cert.cuts} cuts; "
                         f"{cert.time:.2f} s")
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
                          f"refit {c.refit}"]
        if f.warnings:
            lines += ["", "Warnings:", *[f"  {w}" for w in f.warnings]]
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))
