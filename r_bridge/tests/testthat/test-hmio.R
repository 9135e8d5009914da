skip_if_not(hiermio_available(), "the hiermio Python package is not reachable (set RETICULATE_PYTHON)")
library(lme4)

# the Python API directly, its answers taken out as plain lists
py_fit <- function(formula, data, budget) {
  hm <- reticulate::import("hiermio")
  f <- hm$fit(formula, data, budget = as.integer(budget), progress = FALSE)
  selected <- reticulate::py_eval("lambda f: [str(v) for vals in f.selected.values() for v in vals]")
  list(fixef = unlist(f$fixef()$tolist()), selected = unlist(selected(f)))
}

test_that("hmio matches the Python API on sleepstudy", {
  fit <- hmio(Reaction ~ Days + (Days | Subject), data = sleepstudy, budget = 5)
  ref <- py_fit("Reaction ~ Days + (Days | Subject)", sleepstudy, 5)
  expect_equal(unname(fixef(fit)), ref$fixef, tolerance = 1e-10)
  expect_equal(sort(unname(unlist(fit$selected))), sort(ref$selected))
  expect_lte(sum(ranef(fit)$Subject != 0), 5)
})

test_that("generics return the types lme4 users expect", {
  fit <- hmio(Reaction ~ Days + (Days | Subject), data = sleepstudy, budget = 4)
  expect_type(fixef(fit), "double")
  expect_named(fixef(fit), c("(Intercept)", "Days"))
  expect_type(ranef(fit), "list")
  expect_s3_class(ranef(fit)$Subject, "data.frame")
  expect_equal(rownames(ranef(fit)$Subject), levels(sleepstudy$Subject))
  expect_equal(as.matrix(coef(fit)$Subject), sweep(as.matrix(ranef(fit)$Subject), 2, fixef(fit), "+"))
  expect_output(print(VarCorr(fit)), "Residual")
  expect_true(is.numeric(sigma(fit)) && sigma(fit) > 0)
  expect_output(print(summary(fit)), "Fixed effects")
})

test_that("predict follows lme4's arguments", {
  fit <- hmio(Reaction ~ Days + (Days | Subject), data = sleepstudy, budget = 4)
  pop <- predict(fit, sleepstudy, re.form = NA)
  expect_equal(unname(pop), unname(fixef(fit)[1] + fixef(fit)[2] * sleepstudy$Days))
  full <- predict(fit, sleepstudy)
  re <- ranef(fit)$Subject[as.character(sleepstudy$Subject), ]
  expect_equal(unname(full), unname(pop + re[, 1] + re[, 2] * sleepstudy$Days))
  new <- transform(sleepstudy[1:2, ], Subject = factor("999"))
  expect_equal(unname(predict(fit, new, allow.new.levels = TRUE)), unname(pop[1:2]))
  expect_error(predict(fit, new), "not seen in training")
})

test_that("Python errors arrive as R errors with the Python message", {
  expect_error(hmio(Reaction ~ Dayz + (1 | Subject), data = sleepstudy, budget = 1),
               "unknown column 'Dayz'")
  err <- tryCatch(hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = list("(1 | Subjct)" = 2)),
                  error = identity)
  expect_match(conditionMessage(err), "unknown random term\\(s\\) \\['\\(1 \\| Subjct\\)'\\]")
  expect_false(grepl("Traceback", conditionMessage(err)))
})

test_that("factors, NA and integers cross faithfully", {
  d <- sleepstudy
  d$Subject <- factor(d$Subject, levels = rev(levels(d$Subject)))
  d$Days <- as.integer(d$Days)
  d$Reaction[1:3] <- NA
  expect_warning(fit <- hmio(Reaction ~ Days + (1 | Subject), data = d, budget = 3), "3 of 180 rows dropped")
  expect_equal(rownames(ranef(fit)$Subject), rev(levels(sleepstudy$Subject)))
  expect_equal(fit$nobs, nrow(d) - 3)
  expect_equal(fit$n_dropped, 3)
})

test_that("compare_lmer reports lme4's singular fit on Dyestuff2", {
  cmp <- compare_lmer(Yield ~ 1 + (1 | Batch), Dyestuff2, budget = 2)
  expect_equal(cmp$status[["lme4"]], "singular")
  expect_true(any(grepl("singular", cmp$messages)))
  expect_output(print(cmp), "lme4")
  expect_equal(cmp$table["(Intercept)", "lme4"], unname(fixef(cmp$lmer)))
})

test_that("compare_lmer chooses the budget by cross-validation when asked", {
  cmp <- compare_lmer(Yield ~ 1 + (1 | Batch), Dyestuff2, budget = "cv")
  expect_true(cmp$budget %in% 0:6)
  expect_lte(sum(ranef(cmp$mio)$Batch != 0), cmp$budget)
  expect_equal(cmp$status[["lme4"]], "singular")
})

test_that("the documented examples run", {
  # the examples plot; draw to a null device instead of leaving Rplots.pdf behind
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  for (topic in c("hmio", "compare_lmer", "hiermio_python")) {
    expect_no_error(suppressMessages(capture.output(example(topic, package = "hiermio", character.only = TRUE,
                                                            echo = FALSE, ask = FALSE))))
  }
})

test_that("what Python warns about reaches R as R warnings, and bad options as R errors", {
  holes <- sleepstudy
  holes$Reaction[1:3] <- NA
  expect_warning(fit <- hmio(Reaction ~ Days + (1 | Subject), data = holes, budget = 3),
                 "3 of 180 rows dropped for missing values in 'Reaction'")
  expect_equal(nobs(fit), 177)
  collinear <- transform(sleepstudy, Days2 = 2 * Days)
  expect_warning(hmio(Reaction ~ Days + Days2 + (1 | Subject), data = collinear, budget = 3),
                 "dropping 1 column / coefficient: 'Days2'")
  expect_error(hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3, seed = -1),
               "seed must be in 0..2147483647")
  expect_error(hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3, ridge = 1e-9),
               "is below 1e-06")
})

test_that("options go to hiermio's one control object, which names a misspelt one", {
  expect_error(hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3, ridg = 0.2),
               "unknown option 'ridg' \\(did you mean 'ridge'\\?\\)")
  expect_warning(fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = 3, ridge = 0.5,
                             selection = "cluster", certify = FALSE), "certify = FALSE")
  expect_match(fit$summary, "Control: ridge 0.5, selection cluster")
})

test_that("a tail budget c(below, above) flags levels by sign, as the Python API does", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), data = sleepstudy, budget = list("(1 | Subject)" = c(1, 2)))
  eff <- ranef(fit)$Subject[, "(Intercept)"]
  expect_lte(sum(eff < 0), 1)
  expect_lte(sum(eff > 0), 2)
  hm <- reticulate::import("hiermio")
  ref <- hm$fit("Reaction ~ Days + (1 | Subject)", sleepstudy,
                budget = reticulate::dict("(1 | Subject)" = reticulate::tuple(1L, 2L)), progress = FALSE)
  expect_equal(unname(fixef(fit)), unlist(ref$fixef()$tolist()), tolerance = 1e-10)
  expect_equal(unlist(fit$budgets[["(1 | Subject)"]]), c(1, 2))
})

test_that("install_hiermio names a bad source before any work", {
  expect_error(install_hiermio(tempdir()), "has no pyproject.toml")
  expect_error(install_hiermio(character(0)), "source must be one directory")
})

test_that("install_hiermio makes a virtual environment with hiermio from a wheel of this checkout", {
  # the checkout's wheel is built as ./run setup builds it; the virtualenv then installs it alone
  # (no index, no dependencies: offline, pip cannot fetch hiermio's dependencies)
  src <- Sys.getenv("HIERMIO_SOURCE")
  skip_if_not(nzchar(src) && file.exists(file.path(src, "pyproject.toml")), "HIERMIO_SOURCE names no checkout")
  wheels <- tempfile("wheels")
  status <- system2(Sys.getenv("RETICULATE_PYTHON"), c("-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, src),
                    stdout = FALSE, stderr = FALSE)
  skip_if(status != 0, "pip could not build a wheel of the checkout here")
  old <- Sys.getenv(c("WORKON_HOME", "PIP_NO_INDEX"))
  Sys.setenv(WORKON_HOME = tempfile("venvs"), PIP_NO_INDEX = "1")  # pip never reaches for the network
  on.exit(do.call(Sys.setenv, as.list(old)), add = TRUE)
  py <- suppressMessages(install_hiermio(list.files(wheels, full.names = TRUE)[1], envname = "r-hiermio-test",
                                         python = Sys.getenv("RETICULATE_PYTHON"), pip_options = "--no-deps"))
  expect_true(file.exists(py))
  expect_true(reticulate::virtualenv_exists("r-hiermio-test"))
  shown <- system2(py, c("-m", "pip", "show", "hiermio"), stdout = TRUE)
  expect_true(any(grepl("^Name: hiermio", shown)))
})
