# The analysis around a fit, in R: the budget (and ridge) by cross-validation, the budget path,
# stability selection, the cluster bootstrap and the ranking of clusters. Each returns R objects.

.formula_string <- function(formula) {
  if (inherits(formula, "formula")) formula <- paste(deparse(formula, width.cutoff = 500L), collapse = " ")
  if (!is.character(formula) || length(formula) != 1) stop("formula must be a formula or one string", call. = FALSE)
  formula
}

#' Choose the budget (and the ridge) by cross-validation
#'
#' Every fold sweeps the budgets as a screening path; the chosen budget's fit on all the data is
#' certified. With \code{ridges}, the selection's ridge is tuned beside the budget.
#' @param formula,data As in \code{\link{hmio}}.
#' @param budgets Whole numbers, or "auto" (every budget up to the largest term's size).
#' @param ridges Optional ridge weights to tune.
#' @param folds,rule,scheme Number of folds; "min" or "1se"; "within" (rows of every cluster in
#'   every fold) or "cluster" (whole clusters held out).
#' @param weights,offset,subset As in \code{\link{hmio}}: a column of \code{data} (unquoted), an
#'   expression of its columns, or a vector with one value per row; they travel with their rows into
#'   every fold or half-sample.
#' @param ... Options of the fits (\code{ridge}, \code{time_limit}, ...).
#' @return An object of class \code{hmio_cv}: \code{table} (mean and standard error of the
#'   validation MSE per budget), \code{budget}, \code{ridge} and \code{fit} (an \code{hmio}).
#' @examples
#' if (hiermio_available()) {
#' cvres <- hmio_cv(Reaction ~ Days + (1 | Subject), lme4::sleepstudy, budgets = c(0, 2, 4), folds = 3)
#' cvres$budget; plot(cvres)
#' }
#' @export
hmio_cv <- function(formula, data, budgets = "auto", ridges = NULL, folds = 5, rule = "min", scheme = "within",
                    weights = NULL, offset = NULL, subset = NULL, ...) {
  formula <- .formula_string(formula)
  budgets <- .check_budgets(budgets, auto = TRUE)
  rows <- .row_args(data, substitute(weights), substitute(offset), substitute(subset), parent.frame())
  options <- list(...)
  sent <- .model_data(formula, rows$data, .extra_columns(rows, options))
  res <- .py(do.call(.hm$bridge$cv_for_r, c(list(formula, sent, budgets, ridges, folds = folds, rule = rule,
                                                 scheme = scheme), rows$options, .py_options(options))))
  for (w in unlist(res$warnings)) warning(.r_message(w), call. = FALSE)
  best_ridge <- res$best_ridge
  structure(list(table = .table(.deep_r(res$table)), budget = as.integer(res$best_budget),
                 ridge = if (is.null(best_ridge)) NULL else as.numeric(best_ridge), rule = rule, scheme = scheme,
                 fit = .as_hmio(res$fit, match.call(), rows)), class = "hmio_cv")
}

#' @export
print.hmio_cv <- function(x, ...) {
  cat("Cross-validation (", x$scheme, " folds, rule ", x$rule, "): budget ", x$budget,
      if (!is.null(x$ridge)) paste0(", ridge ", format(x$ridge)), "\n", sep = "")
  print(x$table[, intersect(c("ridge", "budget", "mean_mse", "se_mse"), names(x$table))], row.names = FALSE)
  invisible(x)
}

#' @export
plot.hmio_cv <- function(x, ...) {
  t <- x$table
  plot(t$budget, t$mean_mse, type = "n", xlab = "budget", ylab = "validation MSE",
       ylim = range(c(t$mean_mse - t$se_mse, t$mean_mse + t$se_mse)), ...)
  groups <- if ("ridge" %in% names(t)) split(t, t$ridge) else list(all = t)
  for (i in seq_along(groups)) {
    g <- groups[[i]]
    lines(g$budget, g$mean_mse, type = "b", col = i, pch = 19)
    segments(g$budget, g$mean_mse - g$se_mse, g$budget, g$mean_mse + g$se_mse, col = i)
  }
  if (length(groups) > 1) legend("topright", paste("ridge", names(groups)), col = seq_along(groups), lty = 1)
  abline(v = x$budget, lty = 2)
  invisible(x)
}

#' Fits along a budget path
#' @inheritParams hmio_cv
#' @param budgets Whole numbers, fitted in increasing order, each warm-started from the last.
#' @return A data frame: budget, objective, bound, gap, status, nonzero effects, seconds, and the
#'   levels that entered at each budget.
#' @examples
#' if (hiermio_available()) hmio_path(Reaction ~ Days + (1 | Subject), lme4::sleepstudy, 0:3)
#' @export
hmio_path <- function(formula, data, budgets, weights = NULL, offset = NULL, subset = NULL, ...) {
  formula <- .formula_string(formula)
  budgets <- .check_budgets(budgets)
  rows <- .row_args(data, substitute(weights), substitute(offset), substitute(subset), parent.frame())
  options <- list(...)
  sent <- .model_data(formula, rows$data, .extra_columns(rows, options))
  .table(.deep_r(.py(do.call(.hm$bridge$path_for_r, c(list(formula, sent, budgets), rows$options,
                                                       .py_options(options))))))
}

#' Stability selection: how often each cluster is selected over half-sample fits
#' @inheritParams hmio_cv
#' @param budget As in \code{\link{hmio}}.
#' @param B Number of half-sample fits (even).
#' @param threshold Frequency above which a cluster is on the watch list.
#' @return A list: \code{frequencies} (a data frame by level and term), \code{watchlist} and
#'   \code{expected_false} (Meinshausen and Buehlmann's bound on false flags, per term).
#' @examples
#' if (hiermio_available()) hmio_stability(Reaction ~ Days + (1 | Subject), lme4::sleepstudy, 3, B = 4)$watchlist
#' @export
hmio_stability <- function(formula, data, budget, B = 100, threshold = 0.8, weights = NULL, offset = NULL,
                           subset = NULL, ...) {
  formula <- .formula_string(formula)
  budget <- .check_budget(budget)
  if (is.list(budget)) budget <- reticulate::dict(budget)
  rows <- .row_args(data, substitute(weights), substitute(offset), substitute(subset), parent.frame())
  options <- list(...)
  sent <- .model_data(formula, rows$data, .extra_columns(rows, options))
  res <- .deep_r(.py(do.call(.hm$bridge$stability_for_r, c(list(formula, sent, budget, B = B, threshold = threshold),
                                                           rows$options, .py_options(options)))))
  list(frequencies = .table(res$frequencies), watchlist = .table(res$watchlist),
       expected_false = unlist(res$expected_false))
}

#' Cluster bootstrap of the fixed effects (each resample re-selects the clusters)
#' @param fit An \code{hmio} fit.
#' @param B Resamples; \code{level} the interval's level; \code{certify} certify every refit.
#' @param level Confidence level.
#' @param certify Certify every resample (slow) instead of screening.
#' @return A data frame: estimate, bootstrap standard error and percentile interval.
#' @examples
#' if (hiermio_available()) {
#' fit <- hmio(Reaction ~ Days + (1 | Subject), data = lme4::sleepstudy, budget = 3)
#' hmio_bootstrap(fit, B = 20)
#' }
#' @export
hmio_bootstrap <- function(fit, B = 200, level = 0.95, certify = FALSE) {
  .table(.deep_r(.py(.hm$bridge$bootstrap_for_r(fit$py, B, level, 0L, certify))))
}

#' Which clusters are atypical: one table per grouping factor, strongest evidence first
#'
#' "Atypical" is the strongest evidence of a deviation: the objective a level's effect buys
#' (\code{gain}, about rows x deviation^2), so a large cluster with a moderate deviation outranks a
#' tiny cluster with a large one.
#' @param fit An \code{hmio} fit.
#' @param stability Optional \code{hmio_stability()} result, joined by level.
#' @param reference Optional \code{lme4::lmer} fit whose BLUPs are joined by level.
#' @return A named list of data frames.
#' @examples
#' if (hiermio_available()) {
#' fit <- hmio(Reaction ~ Days + (1 | Subject), data = lme4::sleepstudy, budget = 3)
#' head(hmio_ranking(fit)$Subject)
#' }
#' @export
hmio_ranking <- function(fit, stability = NULL, reference = NULL) {
  stab <- NULL
  if (!is.null(stability)) {
    f <- stability$frequencies
    pd <- reticulate::import("pandas", convert = FALSE)
    stab <- pd$DataFrame(reticulate::dict(lapply(f, function(col) as.list(col))), index = as.list(rownames(f)))
  }
  tables <- .deep_r(.py(.hm$bridge$ranking_for_r(fit$py, stab)))
  out <- lapply(names(tables), function(g) {
    t <- .table(tables[[g]])
    if (!is.null(reference)) {
      blups <- lme4::ranef(reference)[[g]]
      if (!is.null(blups)) for (cn in colnames(blups)) t[[paste("lme4", cn)]] <- blups[as.character(t[[g]]), cn]
    }
    t
  })
  stats::setNames(out, names(tables))
}
