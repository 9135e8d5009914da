skip_if_not(hiermio_available(), "the hiermio Python package is not reachable (set RETICULATE_PYTHON)")
library(lme4)
hm <- reticulate::import("hiermio")

test_that("fitted + residuals is the response, row by row, NA rows dropped and named", {
  d <- sleepstudy
  d$Reaction[c(3, 50)] <- NA
  fit <- suppressWarnings(hmio(Reaction ~ Days + (1 | Subject), data = d, budget = 3))
  expect_equal(nobs(fit), nrow(d) - 2L)
  expect_equal(names(fitted(fit)), rownames(d)[-c(3, 50)])
  expect_equal(unname(fitted(fit) + residuals(fit)), d$Reaction[-c(3, 50)], tolerance = 1e-10)
  expect_equal(nrow(model.frame(fit)), nrow(d) - 2L)
  expect_setequal(names(model.frame(fit)), c("Reaction", "Days", "Subject"))
  expect_equal(deparse(formula(fit)), "Reaction ~ Days + (1 | Subject)")
})

test_that("vcov and confint are the Python fit's, by kind; confint covers the estimate", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3)
  py <- hm$fit("Reaction ~ Days + (1 | Subject)", sleepstudy, budget = 3L, progress = FALSE)
  for (kind in c("robust", "support", "conditional")) {
    ref <- do.call(rbind, lapply(py$vcov(kind)$to_numpy()$tolist(), unlist))
    expect_equal(unname(vcov(fit, kind = kind)), unname(ref), tolerance = 1e-10)
  }
  expect_equal(dimnames(vcov(fit)), list(c("(Intercept)", "Days"), c("(Intercept)", "Days")))
  ci <- confint(fit)
  expect_true(all(ci[, 1] < fixef(fit) & fixef(fit) < ci[, 2]))
  expect_equal(dim(confint(fit, "Days")), c(1L, 2L))
  expect_error(vcov(fit, kind = "sandwich"), "should be one of")
})

test_that("generics without a meaning here say why", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3)
  expect_error(logLik(fit), "no likelihood")
  expect_error(AIC(fit), "no likelihood")
  expect_error(anova(fit), "no likelihood")
})

test_that("update refits with a changed budget or formula", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3)
  fit2 <- update(fit, budget = 1)
  expect_equal(sum(ranef(fit2)$Subject != 0), 1)
  fit3 <- update(fit, . ~ . - Days)
  expect_named(fixef(fit3), "(Intercept)")
})

test_that("hmio_cv matches hiermio.cv, with the ridge tuned beside the budget", {
  res <- hmio_cv(Reaction ~ Days + (1 | Subject), sleepstudy, budgets = c(0, 2, 4), ridges = c(0.3, 1), folds = 3)
  py <- hm$cv("Reaction ~ Days + (1 | Subject)", sleepstudy, budgets = list(0L, 2L, 4L), ridges = list(0.3, 1),
              folds = 3L, progress = FALSE)
  expect_equal(res$table$mean_mse, unlist(py$table$mean_mse$tolist()), tolerance = 1e-10)
  expect_equal(res$budget, as.integer(py$best_budget_))
  expect_equal(res$ridge, py$best_ridge_)
  expect_s3_class(res$fit, "hmio")
  expect_output(print(res), "budget")
})

test_that("hmio_path, hmio_stability and hmio_bootstrap return data frames with their Python numbers", {
  p <- hmio_path(Reaction ~ Days + (1 | Subject), sleepstudy, 0:3)
  expect_equal(p$budget, 0:3)
  expect_true(all(diff(p$objective) <= 1e-9))
  expect_equal(p$nonzero, 0:3)
  st <- hmio_stability(Reaction ~ Days + (1 | Subject), sleepstudy, 3, B = 4)
  expect_true(all(st$frequencies[[1]] >= 0 & st$frequencies[[1]] <= 1))
  fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3)
  bs <- hmio_bootstrap(fit, B = 10)
  expect_equal(rownames(bs), c("(Intercept)", "Days"))
  expect_true(all(bs$se > 0))
})

test_that("hmio_ranking joins lme4's BLUPs from R's own lmer by level", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3)
  ref <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
  r <- hmio_ranking(fit, reference = ref)$Subject
  expect_equal(nrow(r), nlevels(sleepstudy$Subject))
  expect_equal(r[["lme4 (Intercept)"]], ranef(ref)$Subject[as.character(r$Subject), "(Intercept)"])
  expect_true(all(diff(r$gain) <= 1e-9))
  expect_equal(sum(r$selected), 3)
})

test_that("predict on new levels equals Python's under every new-cluster rule", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 4)
  py <- hm$fit("Reaction ~ Days + (1 | Subject)", sleepstudy, budget = 4L, progress = FALSE)
  new <- transform(sleepstudy[c(1, 15, 40), ], Subject = factor(c("901", "902", "903")))
  for (rule in c("population", "soft", "hard", "features")) {
    ref <- unlist(py$predict(new, new_levels = rule)$tolist())
    expect_equal(unname(predict(fit, new, new.levels = rule)), ref, tolerance = 1e-10, info = rule)
  }
  expect_error(predict(fit, new, new.levels = "nearest"), "nearest")
})
