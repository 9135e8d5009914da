# %% [markdown]
# # Random slopes: lme4's `sleepstudy`, MIO beside lme4
#
# Reaction times of 18 subjects over ten days of sleep deprivation. lme4's model
# `Reaction ~ Days + (Days | Subject)` gives every subject its own intercept and slope. With
# hiermio the same formula asks: which subjects' intercepts, and which subjects' slopes, differ
# from the population? Each coefficient is its own column with its own binary, and the budget
# (here chosen by cross-validation) caps how many of them may be nonzero. Every number below is
# computed when this page is built.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import hiermio as hm
from _setup import SIZE, pick

sleep = hm.load_dataset("sleepstudy")
formula = "Reaction ~ Days + (Days | Subject)"
print(f"run size: {SIZE}; {len(sleep)} rows, {sleep.Subject.nunique()} subjects")

# %%
cv = hm.cv(formula, sleep, budgets=range(0, 37, pick(2, 1)), scheme="within", folds=5, rule="1se",
           random_state=0, progress=False)
print(f"chosen budget: {cv.best_budget_} nonzero subject coefficients out of 36")
fit = cv.best_fit_
print(fit.summary())

# %%
ref = hm.lmer(formula, sleep)
print(f"lme4: status {ref.status}, REML logLik {ref.logLik:.3f}, {ref.time:.2f} s")
pd.DataFrame({"MIO": fit.fixef(), "lme4": ref.fixef()})

# %% [markdown]
# ## Subject effects side by side
# Grey crosses: coefficients MIO leaves at the population value.

# %%
mio = fit.ranef()["Subject"]
lme = ref.ranef()["Subject"].set_axis(mio.index)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, coef in zip(axes, ["(Intercept)", "Days"]):
    zero = mio[coef] == 0
    ax.scatter(lme[coef][~zero], mio[coef][~zero], label="MIO: differs")
    ax.scatter(lme[coef][zero], mio[coef][zero], marker="x", color="grey", label="MIO: population")
    for lab in mio.index[~zero]:
        ax.annotate(str(lab), (lme[coef][lab], mio[coef][lab]), fontsize=7)
    lim = 1.1 * max(abs(lme[coef]).max(), abs(mio[coef]).max())
    ax.plot([-lim, lim], [-lim, lim], color="black", lw=0.7)
    ax.set_xlabel(f"lme4 {coef} (BLUP)")
    ax.set_ylabel(f"MIO {coef}")
    ax.set_title(coef)
axes[0].legend();

# %% [markdown]
# ## Fitted lines for the subjects MIO flags

# %%
flagged = sorted(set(mio.index[(mio != 0).any(axis=1)]))
show = flagged[:6] if flagged else list(mio.index[:6])
fig, axes = plt.subplots(1, len(show), figsize=(2.6 * len(show), 2.8), sharey=True)
for ax, subj in zip(np.atleast_1d(axes), show):
    d = sleep[sleep.Subject.astype(str) == str(subj)]
    ax.scatter(d.Days, d.Reaction, s=10, color="black")
    ax.plot(d.Days, fit.predict(d), label="MIO")
    ax.plot(d.Days, ref.predict(d), label="lme4", ls="--")
    ax.set_title(f"subject {subj}")
np.atleast_1d(axes)[0].legend();
