# %% [markdown]
# # A singular fit: lme4's `Dyestuff2`
#
# Box and Tiao's simulated yields of 6 batches, 5 samples each. The batch variance is estimated
# as zero by lme4, which reports a singular fit. What does each method say? MIO's answer to "how
# many batches differ from the population?" is a budget chosen by cross-validation and a
# certificate, with no variance component to collapse. Every number below is computed when this
# page is built.

# %%
import pandas as pd

import hiermio as hm
from _setup import SIZE

dye = hm.load_dataset("Dyestuff2")
formula = "Yield ~ 1 + (1 | Batch)"
print(f"run size: {SIZE}; {len(dye)} rows, {dye.Batch.nunique()} batches")

# %%
ref = hm.lmer(formula, dye)
print(f"lme4: status {ref.status}")
for m in ref.messages:
    print("  lme4 says:", m)
print(ref.VarCorr())

# %%
cv = hm.cv(formula, dye, budgets=range(0, 7), scheme="within", folds=5, rule="min", random_state=0, progress=False)
print(cv.table[["mean_mse", "se_mse"]].to_string(float_format=lambda v: f"{v:.4g}"))
print(f"\nbudget chosen by validation: {cv.best_budget_}")
fit = cv.best_fit_
print(fit.summary())

# %% [markdown]
# ## Every budget, certified
# The path shows what each budget buys: the objective falls as batches are allowed to differ,
# while the cross-validated error above says whether that is signal.

# %%
path = hm.path(formula, dye, budgets=range(0, 7))
print(path.table[["objective", "gap", "status", "nonzero"]].to_string(float_format=lambda v: f"{v:.5g}"))
pd.DataFrame({"MIO (chosen budget)": fit.ranef()["Batch"]["(Intercept)"],
              "MIO (all 6 free)": path.fits[6].ranef()["Batch"]["(Intercept)"],
              "lme4": ref.ranef()["Batch"]["(Intercept)"].to_numpy()})
