# %% [markdown]
# # Scale: lme4's `InstEval`, students and lecturers crossed
#
# 73,421 course ratings (1–5) by 2,972 students of 1,128 lecturers at ETH Zürich. The model
# `y ~ service + (1 | s) + (1 | d)` has two crossed grouping factors: 4,100 candidate effects,
# with a budget per factor. This vignette reports what it costs: the time to build the
# sufficient statistics, the time to a first solution, the search, and the gap proven at the
# time limit, beside lme4 on the same formula. Every number below is computed when this page is built.

# %%
import time

import pandas as pd

import hiermio as hm
from _setup import SIZE, pick

inst = hm.load_dataset("InstEval")
formula = "y ~ service + (1 | s) + (1 | d)"
budget = {"(1 | s)": 100, "(1 | d)": 100}
time_limit = pick(60, 600)
print(f"run size: {SIZE}; {len(inst)} ratings, {inst.s.nunique()} students, {inst.d.nunique()} lecturers; "
      f"budget {budget}; time limit {time_limit} s")

# %%
t0 = time.perf_counter()
fit = hm.fit(formula, inst, budget=budget, time_limit=time_limit, progress=False)
wall = time.perf_counter() - t0
print(fit.summary())
print(f"\nwall time {wall:.1f} s; " + ", ".join(f"{k} {v:.2f} s" for k, v in fit.timings.items()))

# %% [markdown]
# The screening fit (no branch-and-bound: the heuristic support and the gap the continuous
# relaxation alone proves) for comparison:

# %%
t0 = time.perf_counter()
quick = hm.fit(formula, inst, budget=budget, time_limit=time_limit, certify=False, progress=False)
print(f"screening: {time.perf_counter() - t0:.1f} s; {quick.certificate.describe()}")

# %%
ref = hm.lmer(formula, inst)
print(f"lme4: status {ref.status}, {ref.time:.1f} s")
side = pd.DataFrame({"MIO": fit.fixef(), "lme4": ref.fixef()})
side.loc["sigma"] = [fit.sigma, ref.sigma]
side

# %%
print("time ratio MIO / lme4:", f"{wall / ref.time:.2f}")
print("nonzero effects:", {g: len(v) for g, v in fit.selected.items()})

# %% [markdown]
# ## When the gap stays open: crossed factors and the ridge
#
# With crossed factors the search's lower bound is the continuous (perspective) relaxation's, and
# more time barely moves it (`benchmarks/probe_crossed.py` follows it over five minutes). The
# relaxation lets a fraction of a level's binary buy a large share of its effect, which a larger
# ridge makes expensive. The same budgets at larger ridges, and how many of the selected levels
# they share with the fit above:

# %%
rows = []
for ridge in (5, 25):
    t0 = time.perf_counter()
    other = hm.fit(formula, inst, budget=budget, ridge=ridge, time_limit=pick(30, 120), progress=False)
    c = other.certificate
    rows.append({"ridge": ridge, "status": c.status, "gap %": 100 * c.gap, "share of the signal %": 100 * c.signal_gap,
                 "wall s": time.perf_counter() - t0,
                 **{f"shared {g}": len(set(other.selected[g]) & set(fit.selected[g])) for g in fit.selected}})
pd.DataFrame(rows).round(4)
