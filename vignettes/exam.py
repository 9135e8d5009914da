# %% [markdown]
# # Which schools are atypical? mlmRev's `Exam` data, MIO beside lme4
#
# 4,059 London students in 65 schools: the normalised exam score `normexam` against the
# standardised London Reading Test score at intake, `standLRT`. lme4 gives every school a
# shrunken intercept; hiermio asks how many schools *differ* from the population once intake is
# accounted for, picks that number by cross-validation, names the schools, and says how surely
# each one is flagged (stability selection). Every number below is computed when this page is built.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import hiermio as hm
from _setup import SIZE, pick

exam = hm.load_dataset("Exam")
formula = "normexam ~ standLRT + (1 | school)"
print(f"run size: {SIZE}; {len(exam)} students in {exam.school.nunique()} schools")

# %% [markdown]
# ## The budget, by cross-validation
# Within-cluster folds (the paper's scheme: every school keeps some students in each fold), the
# one-standard-error rule: the smallest budget whose error is within one standard error of the best.

# %%
t0 = time.perf_counter()
cv = hm.cv(formula, exam, budgets=range(0, pick(21, 31)), scheme="within", folds=5, rule="1se",
           random_state=1, progress=False, time_limit=pick(30, 300))
print(f"cross-validation: {time.perf_counter() - t0:.1f} s; chosen budget {cv.best_budget_}")
cv.plot();

# %% [markdown]
# ## The fit at that budget, certified

# %%
fit = cv.best_fit_
print(fit.summary())

# %% [markdown]
# ## lme4 on the same formula

# %%
ref = hm.lmer(formula, exam)
print(f"lme4 status: {ref.status}; {ref.time:.2f} s")
side = pd.DataFrame({"MIO": fit.fixef(), "lme4": ref.fixef()})
side.loc["sigma"] = [fit.sigma, ref.sigma]
side.loc["ICC"] = [fit.icc["school"], ref.icc["school"]]
side

# %%
mio_eff = fit.ranef()["school"]["(Intercept)"]
lme_eff = ref.ranef()["school"]["(Intercept)"].set_axis(mio_eff.index)
fig, ax = plt.subplots(figsize=(5.5, 5))
zero = mio_eff == 0
ax.scatter(lme_eff[~zero], mio_eff[~zero], label="MIO: differs")
ax.scatter(lme_eff[zero], mio_eff[zero], marker="x", color="grey", label="MIO: population")
lim = 1.1 * max(abs(lme_eff).max(), abs(mio_eff).max())
ax.plot([-lim, lim], [-lim, lim], color="black", lw=0.7)
ax.set_xlabel("lme4 school effect (BLUP)")
ax.set_ylabel("MIO school effect")
ax.legend();
print(f"correlation of the nonzero MIO effects with lme4's: {np.corrcoef(lme_eff[~zero], mio_eff[~zero])[0, 1]:.3f}")

# %% [markdown]
# ## How surely is each school flagged?
# Stability selection: fit on complementary half-samples of every school's students, count how
# often each school is selected. The watch list gives the schools above the threshold and the
# Meinshausen–Bühlmann bound on the expected number of false flags.

# %%
t0 = time.perf_counter()
stab = hm.stability(formula, exam, budget=cv.best_budget_, B=pick(20, 100), random_state=1, progress=False)
print(f"stability selection: {stab.B} half-sample fits in {time.perf_counter() - t0:.1f} s")
watch = stab.watchlist(threshold=0.8)
bound = watch.attrs["expected_false"]["(1 | school)"]
print(f"{len(watch)} schools selected in at least 80% of the fits; expected number of false flags <= {bound:.2f}")
watch

# %%
stab.plot(threshold=0.8);

# %% [markdown]
# ## How much of the between-school deviation do the flagged schools carry?

# %%
curve = hm.audit_curve(fit)
curve.head(10)

# %% [markdown]
# ## Which schools are atypical, in order
# `fit.ranking()` orders the schools by the strength of the evidence that they deviate: the
# objective a school buys when it is freed (its `gain`, about rows × deviation²). A large school
# with a moderate deviation can therefore outrank a small school with a large one. The table joins
# the stability frequencies and lme4's BLUPs by school.

# %%
rank = fit.ranking(stability=stab, reference=ref)["school"]
rank["rank"] = np.arange(1, len(rank) + 1)
rank.head(12)

# %% [markdown]
# The pair below is picked by code from this run's table: a large school with a moderate lme4
# deviation that ranks above a small school whose lme4 deviation is larger.

# %%
blup = rank["lme4 (Intercept)"].abs()
pairs = [(a, b) for a in rank.index for b in rank.index
         if rank.loc[a, "rank"] < rank.loc[b, "rank"] and rank.loc[a, "size"] >= 5 * rank.loc[b, "size"]
         and blup[a] < blup[b]]
if pairs:
    a, b = max(pairs, key=lambda ab: blup[ab[1]] - blup[ab[0]])
    print(f"school {a}: {rank.loc[a, 'size']} students, lme4 deviation {rank.loc[a, 'lme4 (Intercept)']:+.2f}, "
          f"gain {rank.loc[a, 'gain']:.2f}, rank {rank.loc[a, 'rank']}")
    print(f"school {b}: {rank.loc[b, 'size']} students, lme4 deviation {rank.loc[b, 'lme4 (Intercept)']:+.2f}, "
          f"gain {rank.loc[b, 'gain']:.2f}, rank {rank.loc[b, 'rank']}")

# %%
fit.plot();

# %% [markdown]
# ## Low and high performers: a tail budget
# "At most 3 schools below the population and 5 above" is a tail budget: the effects are
# sign-constrained, and the fit is certified as before.

# %%
tails = hm.fit(formula, exam, {"(1 | school)": (3, 5)}, progress=False)
eff = tails.ranef()["school"]["(Intercept)"]
print(tails.certificate)
print("below:", list(eff.index[eff < 0]), " above:", list(eff.index[eff > 0]))

# %% [markdown]
# ## Standard errors for a school-level covariate
# `schavg` (the school's average intake) is constant within a school, so it is identified only
# between schools. Three standard errors for the same MIO estimate: conditional on the support
# (every unselected school exactly the population), cluster-robust given the support, and the
# summary's default, cluster-robust and selection-aware. The cluster bootstrap re-selects the
# schools in every resample, and lme4 is shown for reference.

# %%
f2 = "normexam ~ standLRT + schavg + (1 | school)"
fit2 = hm.fit(f2, exam, 10, progress=False)
boot = hm.bootstrap(fit2, B=pick(60, 200), random_state=1, progress=False)
ref2 = hm.lmer(f2, exam)
ses = pd.DataFrame({kind: np.sqrt(np.diag(fit2.vcov(kind))) for kind in ("conditional", "support", "robust")},
                   index=fit2.fixef().index)
ses["bootstrap"] = boot["se"]
ses["lme4"] = ref2.se()
ses.round(4)
