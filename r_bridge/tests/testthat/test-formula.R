skip_if_not(hiermio_available(), "the hiermio Python package is not reachable (set RETICULATE_PYTHON)")
library(lme4)

# The Python API called directly with the same formula text: fixef by name, predictions on new rows
py_api <- function(formula, data, budget, newdata) {
  hm <- reticulate::import("hiermio")
  bridge <- reticulate::import("hiermio.rbridge")
  f <- hm$fit(formula, hiermio:::.to_pandas(data), budget = as.integer(budget), progress = FALSE)
  fe <- f$fixef()
  list(fixef = stats::setNames(unlist(fe$tolist()), unlist(fe$index$tolist())),
       predict = unlist(f$predict(hiermio:::.to_pandas(newdata), allow_new_levels = TRUE)$tolist()))
}

cases <- list(
  list(Reaction ~ Days + (Days | Subject), sleepstudy, 4),
  list(Reaction ~ scale(Days) + (1 | Subject), sleepstudy, 3),
  list(Reaction ~ poly(Days, 2) + (1 | Subject), sleepstudy, 3),
  list(Reaction ~ I(Days^2) + factor(Days > 4) + (1 | Subject), sleepstudy, 3),
  list(log(Reaction) ~ splines::ns(Days, df = 3) + (1 | Subject), sleepstudy, 2),
  list(angle ~ recipe * temperature + (1 | recipe:replicate), cake, 5),
  list(distance ~ age * Sex + (age | Subject), nlme::Orthodont, 4),
  list(score ~ Machine + (1 | Worker) + (1 | Worker:Machine), nlme::Machines, 3),
  list(yield ~ nitro * Variety + (1 | Block/Variety), nlme::Oats, 3),
  list(normexam ~ standLRT + schgend + type + (1 | school), mlmRev::Exam, 5)
)

test_that("hmio() with R formulas gives the Python API's fixef by name and predictions on new rows", {
  for (case in cases) {
    formula <- case[[1]]; data <- as.data.frame(case[[2]]); budget <- case[[3]]
    text <- paste(deparse(formula, width.cutoff = 500L), collapse = " ")
    fit <- suppressWarnings(hmio(formula, data, budget = budget))
    new <- data[c(2, 7, nrow(data)), ]
    ref <- suppressWarnings(py_api(text, data, budget, new))
    expect_equal(names(fixef(fit)), names(ref$fixef), info = text)
    expect_equal(fixef(fit), ref$fixef[names(fixef(fit))], tolerance = 1e-8, info = text)
    expect_equal(unname(predict(fit, new)), ref$predict, tolerance = 1e-8, info = text)
  }
})

test_that("predict re-uses the training transforms, as lme4 does, also for one row", {
  fit <- hmio(Reaction ~ scale(Days) + (1 | Subject), sleepstudy, budget = 3)
  ref <- lmer(Reaction ~ scale(Days) + (1 | Subject), sleepstudy)
  one <- sleepstudy[1, ]
  # population level: lme4's own predict standardises with the training mean and SD
  expect_equal(unname(predict(fit, one, re.form = NA)),
               unname(fixef(fit)[1] + fixef(fit)[2] * (one$Days - mean(sleepstudy$Days)) / sd(sleepstudy$Days)))
  expect_equal(unname(predict(fit, one, re.form = NA) - fixef(fit)[1]) / fixef(fit)[2],
               unname(predict(ref, one, re.form = NA) - fixef(ref)[1]) / fixef(ref)[2], tolerance = 1e-10)
  # a one-row newdata with a character grouping column
  chr <- data.frame(Days = 3, Subject = "308", stringsAsFactors = FALSE)
  expect_equal(unname(predict(fit, chr)), unname(predict(fit, transform(sleepstudy[sleepstudy$Subject == "308", ][4, ]))))
})

test_that("new levels are an error unless allowed, as in lme4", {
  fit <- hmio(Reaction ~ Days + (1 | Subject), sleepstudy, budget = 3)
  new <- transform(sleepstudy[1:2, ], Subject = factor("999"))
  expect_error(predict(fit, new), "999")
  expect_equal(unname(predict(fit, new, allow.new.levels = TRUE)), unname(predict(fit, new, re.form = NA)))
  expect_equal(length(predict(fit, new, new.levels = "soft")), 2)
})

test_that("weights and offsets work as in lmer", {
  d <- transform(sleepstudy, w = 1 + Days %% 3)
  fit <- hmio(Reaction ~ Days + (1 | Subject), d, budget = 0, weights = w)
  ols <- lm(Reaction ~ Days, d, weights = w)
  expect_equal(unname(fixef(fit)), unname(coef(ols)), tolerance = 1e-8)
  off <- hmio(Reaction ~ Days + offset(2 * Days) + (1 | Subject), sleepstudy, budget = 0)
  expect_equal(unname(fixef(off)), unname(coef(lm(Reaction ~ Days + offset(2 * Days), sleepstudy))), tolerance = 1e-8)
  expect_error(hmio(Reaction ~ Days + (1 | Subject), d, budget = 0, weights = c(1, 2)), "one number per row")
})
