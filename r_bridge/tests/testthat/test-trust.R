skip_if_not(hiermio_available(), "the hiermio Python package is not reachable (set RETICULATE_PYTHON)")
library(lme4)
# Issue #25, case 10 and the R items: re.form as lme4 means it, compare's cv with the weights,
# messages in R's spelling, columns the formula does not use, one reading of weights/offset/subset,
# budgets checked in R.

two_terms <- transform(sleepstudy, g = factor(seq_len(nrow(sleepstudy)) %% 6 + 1))
two_formula <- Reaction ~ Days + (Days | Subject) + (1 | g)

# X beta plus the chosen coefficients' Z gamma, from a fit's own fixef() and ranef() (hmio or lme4)
by_hand <- function(fit, rows, subject = character(), g = FALSE) {
  fe <- fixef(fit); re <- ranef(fit)
  out <- fe[["(Intercept)"]] + fe[["Days"]] * rows$Days
  s <- re$Subject[as.character(rows$Subject), , drop = FALSE]
  if ("(Intercept)" %in% subject) out <- out + s[, "(Intercept)"]
  if ("Days" %in% subject) out <- out + s[, "Days"] * rows$Days
  if (g) out <- out + re$g[as.character(rows$g), "(Intercept)"]
  out
}

test_that("re.form means what it means in lme4: population, or only the terms it names", {
  # every level may differ, so the effects are unrestricted and the arithmetic is the fair check
  fit <- hmio(two_formula, two_terms, budget = list(Subject = 18, g = 6))
  ref <- suppressMessages(lmer(two_formula, two_terms))
  nd <- two_terms[c(1, 50, 100, 151), ]
  # lme4's meaning of re.form = ~(1 | Subject) with (Days | Subject) and (1 | g): the Subject intercepts only
  expect_equal(unname(predict(ref, nd, re.form = ~(1 | Subject))), by_hand(ref, nd, "(Intercept)"), tolerance = 1e-10)
  expect_equal(unname(predict(fit, nd, re.form = ~(1 | Subject))), by_hand(fit, nd, "(Intercept)"), tolerance = 1e-10)
  expect_equal(unname(predict(fit, nd, re.form = ~(1 | g))), by_hand(fit, nd, g = TRUE), tolerance = 1e-10)
  expect_equal(unname(predict(fit, nd, re.form = ~(Days | Subject) + (1 | g))),
               by_hand(fit, nd, c("(Intercept)", "Days"), TRUE), tolerance = 1e-10)
  expect_equal(unname(predict(fit, nd)), by_hand(fit, nd, c("(Intercept)", "Days"), TRUE), tolerance = 1e-10)
  for (population in list(NA, ~0, FALSE))
    expect_equal(unname(predict(fit, nd, re.form = population)), by_hand(fit, nd), tolerance = 1e-10,
                 info = deparse(population))
  # without newdata: the training rows, as lme4's predict(fit, re.form = NA)
  expect_equal(unname(predict(ref, re.form = NA)), by_hand(ref, two_terms), tolerance = 1e-10)
  expect_equal(unname(predict(fit, re.form = NA)), by_hand(fit, two_terms), tolerance = 1e-10)
  expect_equal(names(predict(fit, re.form = NA)), rownames(two_terms))
  # a term the model does not have, and anything else, is an error naming re.form and the value
  expect_error(predict(fit, nd, re.form = ~(1 | zz)), "re.form = '~\\(1 \\| zz\\)' names the grouping factor 'zz'")
  expect_error(predict(fit, nd, re.form = ~(0 + Reaction | Subject)), "coefficient\\(s\\) \\['Reaction'\\]")
  expect_error(predict(fit, nd, re.form = TRUE), "re.form must be NULL .*; got TRUE")
  expect_error(predict(fit, nd, re.form = ~Days), "re.form must be NULL .* got '~Days'")
})

test_that("compare_lmer(budget = \"cv\") chooses by the same weighted cv as hmio_cv, and lme4 is weighted too", {
  f <- Reaction ~ Days + (1 | Subject)
  d <- sleepstudy
  set.seed(3)
  d$w <- runif(nrow(d), 0.05, 1)^3
  weighted <- hmio_cv(f, d, weights = w)$budget
  expect_false(weighted == hmio_cv(f, d)$budget)  # these weights change the choice
  cmp <- compare_lmer(f, d, budget = "cv", weights = w)
  expect_equal(cmp$budget, weighted)
  expect_equal(cmp$status[["lme4"]], "converged")
  expect_equal(fixef(cmp$lmer), fixef(lmer(f, d, weights = w)), tolerance = 1e-8)
})

test_that("messages from Python speak R: argument names, TRUE, NA", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), sleepstudy, budget = 3)
  new <- transform(sleepstudy[1:2, ], Subject = factor("zz"))
  expect_error(predict(fit, new), "pass allow.new.levels = TRUE to predict", fixed = TRUE)
  msg <- tryCatch(predict(fit, new), error = conditionMessage)
  expect_false(grepl("allow_new_levels|True", msg))
  expect_error(predict(fit, new, allow.new.levels = NA), "allow.new.levels must be TRUE or FALSE, got NA")
  expect_error(hmio(Reaction ~ Days + (1 | Subject), sleepstudy, budget = 3, ridge = NA), "ridge must be .*, got NA$")
  expect_error(hmio(Reaction ~ Days + (1 | Subject), sleepstudy, budget = 3, certify = NA),
               "certify must be TRUE or FALSE, got NA")
  expect_equal(hiermio:::.r_message("pass allow_new_levels=True or new_levels='soft'; re_form got None, not nan"),
               "pass allow.new.levels = TRUE or new.levels = 'soft'; re.form got NULL, not NA")
  expect_equal(hiermio:::.r_message("certify=False: a gap; new data need it too, as column '.hiermio_offset'"),
               "certify = FALSE: a gap; new data need it too, as column offset")
})

test_that("columns the formula does not use are ignored, whatever their class; dates it uses are read as lme4 reads them", {
  d <- sleepstudy
  d$when <- as.Date("2020-01-01") + d$Days
  d$stamp <- as.POSIXct("2020-01-01", tz = "UTC") + 3600 * d$Days
  d$lag <- as.difftime(d$Days, units = "days")
  d$notes <- I(as.list(seq_len(nrow(d))))
  f <- Reaction ~ Days + (1 | Subject)
  expect_equal(fixef(hmio(f, d, budget = 3)), fixef(hmio(f, sleepstudy, budget = 3)))
  # used in the fixed part: the number (lm, lme4: days since 1970, seconds, the difftime's units)
  for (x in c("when", "stamp", "lag")) {
    g <- stats::as.formula(paste("Reaction ~", x, "+ (1 | Subject)"))
    expect_equal(unname(fixef(hmio(g, d, budget = 0))), unname(coef(lm(stats::as.formula(paste("Reaction ~", x)), d))),
                 tolerance = 1e-6, info = x)
  }
  # used as a grouping factor: factor()'s levels, lme4's names
  by_date <- hmio(Reaction ~ Days + (1 | when), d, budget = 10)
  ref <- suppressMessages(lmer(Reaction ~ Days + (1 | when), d))
  expect_equal(rownames(ranef(by_date)$when), rownames(ranef(ref)$when))
  expect_equal(length(predict(by_date, d[1:3, ])), 3L)
  expect_error(hmio(Reaction ~ notes + (1 | Subject), d, budget = 3), "column 'notes' has class AsIs")
  expect_error(hmio(Reaction ~ Dayz + (1 | Subject), d, budget = 3), "unknown column 'Dayz' \\(did you mean 'Days'\\?\\)")
})

test_that("weights, offset and subset are read the same way by every entry point", {
  f <- Reaction ~ Days + (1 | Subject)
  d <- transform(sleepstudy, w = 1 + Days %% 3)
  hm <- reticulate::import("hiermio")
  py_d <- hiermio:::.to_pandas(d)
  # hmio_cv: unquoted column, vector, and Python's cv with the column
  py <- hm$cv("Reaction ~ Days + (1 | Subject)", py_d, budgets = list(0L, 2L, 4L, 18L), folds = 3L, weights = "w",
              progress = FALSE)
  for (res in list(hmio_cv(f, d, budgets = c(0, 2, 4, 18), folds = 3, weights = w),
                   hmio_cv(f, d, budgets = c(0, 2, 4, 18), folds = 3, weights = d$w)))
    expect_equal(res$table$mean_mse, unlist(py$table$mean_mse$tolist()), tolerance = 1e-10)
  # hmio_path and hmio_stability (a vector of one weight per row travels with the half-samples' rows)
  p <- hmio_path(f, d, 0:2, weights = w)
  expect_equal(p$objective[1], sum(d$w * residuals(lm(Reaction ~ Days, d, weights = w))^2), tolerance = 1e-8)
  st_col <- hmio_stability(f, d, 3, B = 4, weights = w)
  st_vec <- hmio_stability(f, d, 3, B = 4, weights = d$w)
  py_st <- hm$stability("Reaction ~ Days + (1 | Subject)", py_d, 3L, B = 4L, weights = "w", progress = FALSE)
  bridge <- reticulate::import("hiermio.rbridge")
  expect_equal(st_col$frequencies, hiermio:::.table(hiermio:::.deep_r(bridge$table_for_r(py_st$frequencies))))
  expect_equal(st_vec$frequencies, st_col$frequencies)
  # subset and offset as lm and lmer read them (weights taken on all rows, then the subset)
  fit <- hmio(f, d, budget = 0, weights = w, subset = Days > 0, offset = 2 * Days)
  ols <- lm(Reaction ~ Days, d, weights = w, subset = Days > 0, offset = 2 * Days)
  expect_equal(unname(fixef(fit)), unname(coef(ols)), tolerance = 1e-8)
  expect_equal(nobs(fit), sum(d$Days > 0))
  # predict() evaluates the offset argument on the new rows, as predict.lm does
  expect_equal(unname(predict(fit, d[c(1, 60), ])), unname(predict(ols, d[c(1, 60), ])), tolerance = 1e-8)
  by_vector <- hmio(f, d, budget = 0, offset = 2 * d$Days)
  expect_error(predict(by_vector, d[1:2, ]), "the fit's offset = 2 \\* d\\$Days gives 180 values for the 2 rows of newdata")
  cmp <- compare_lmer(f, d, budget = 2, weights = w, subset = Subject != "308")
  expect_equal(fixef(cmp$lmer), fixef(lmer(f, d, weights = w, subset = Subject != "308")), tolerance = 1e-8)
  expect_equal(nobs(cmp$mio), sum(d$Subject != "308"))
  expect_error(hmio(f, d, budget = 3, subset = c(TRUE, FALSE)), "subset must be a logical with one value per row \\(180\\)")
  expect_error(hmio_cv(f, d, weights = nope), "weights = nope cannot be evaluated")
  expect_error(hmio_path(f, d, 0:1, offset = c(1, 2)), "offset must be a numeric column of data or one number per row")
})

test_that("budgets are checked in R and named as R spells them", {
  f <- Reaction ~ Days + (1 | Subject)
  expect_error(hmio(f, sleepstudy, budget = NA), "budget must be a whole number >= 0 .*; got NA$")
  expect_error(hmio(f, sleepstudy, budget = 2.5), "got 2.5$")
  expect_error(hmio(f, sleepstudy, budget = list(3)), "a named list of them .*; got list\\(3\\)$")
  expect_error(hmio_stability(f, sleepstudy, budget = -1, B = 2), "got -1$")
  expect_error(compare_lmer(f, sleepstudy, budget = NA), "or \"cv\"; got NA$")
  expect_error(hmio_cv(f, sleepstudy, budgets = c(1, NA)), "budgets must be whole numbers >= 0 or \"auto\"")
  expect_error(hmio_path(f, sleepstudy, budgets = "auto"), "budgets must be whole numbers >= 0; got \"auto\"")
  expect_equal(sum(ranef(hmio(f, sleepstudy, budget = list(Subject = 2)))$Subject != 0), 2)
})
