#' Fit an lme4 formula with L0-constrained cluster effects (mixed-integer optimization)
#'
#' At most \code{budget} cluster effects per random term differ from zero; SCIP certifies how close
#' to optimal the fit is. The result is a plain R object that answers lme4's generics.
#'
#' @param formula An lme4 formula, e.g. \code{Reaction ~ Days + (Days | Subject)}.
#' @param data A data frame.
#' @param budget Whole number (every term), or a named list by term label or grouping factor. A
#'   value \code{c(below, above)} is a tail budget (clusterMIO's \code{lambda = c(worst, best)} lists the positive tail first: its \code{c(3, 5)} is \code{c(5, 3)} here):
#'   at most \code{below} levels of that term with a negative effect and \code{above} with a positive
#'   one, e.g. \code{list("(1 | school)" = c(3, 5))}.
#' @param weights,offset As in \code{lme4::lmer}: prior weights and a known offset, each a column of
#'   \code{data} (unquoted) or one number per row. \code{offset()} terms in the formula work too.
#' @param REML Accepted for lme4 users' calls; it has no meaning here and is ignored with a warning.
#' @param ... Options of the fit, validated by hiermio's one control object (\code{FitControl}):
#'   \code{ridge} (1; the selection's ridge, relative to the median per-level z'z), \code{selection} ("column": a budget
#'   per term, or "cluster": a level's effects enter together), \code{time_limit} (60 s), \code{gap}
#'   (1e-4), \code{seed}, \code{threads}, \code{certify} (TRUE), \code{na_action} ("drop"),
#'   \code{enumerate_below}, \code{search} ("auto": branch on the fixed effects when every cluster effect belongs to
#'   one grouping factor or to nested ones, else SCIP's outer approximation; or "fixed_effects", "outer_approximation"). A misspelt
#'   option is an error that names it.
#' @return An object of class \code{hmio}.
#' @examples
#' if (hiermio_available()) {
#' library(lme4)
#' fit <- hmio(Reaction ~ Days + (Days | Subject), data = sleepstudy, budget = 5)
#' summary(fit); fixef(fit); ranef(fit); VarCorr(fit); sigma(fit)
#' predict(fit, sleepstudy[1:3, ], re.form = NA)
#' }
#' @export
hmio <- function(formula, data, budget, weights = NULL, offset = NULL, REML = NULL, ...) {
  if (!is.null(REML))
    warning("REML has no meaning for hiermio: the fit is penalised least squares with no variance components ",
            "to estimate, so REML = ", deparse(REML), " is ignored", call. = FALSE)
  formula <- .formula_string(formula)
  if (is.list(budget)) budget <- reticulate::dict(budget)
  data <- as.data.frame(data)
  # weights and offset as lme4 takes them: a column of data (unquoted) or one number per row
  w <- eval(substitute(weights), data, parent.frame())
  off <- eval(substitute(offset), data, parent.frame())
  extra <- list()
  if (!is.null(w)) { data[[".hiermio_weights"]] <- .per_row(w, data, "weights"); extra$weights <- ".hiermio_weights" }
  if (!is.null(off)) { data[[".hiermio_offset"]] <- .per_row(off, data, "offset"); extra$offset <- ".hiermio_offset" }
  py_fit <- .py(do.call(.hm$bridge$fit_object, c(list(formula, .to_pandas(data), budget), extra, list(...))))
  .as_hmio(py_fit, match.call(), data)
}

# An R object for a Python fit: what lme4's generics read, with the Python handle for predict() and
# the rows (and columns) of data the fit used, for fitted(), residuals() and model.frame().
.as_hmio <- function(py_fit, call, data) {
  out <- .deep_r(.py(.hm$bridge$export_for_r(py_fit)))
  out$fixef_vec <- stats::setNames(as.numeric(unlist(out$fixef$values)), unlist(out$fixef$names))
  out$ranef_frames <- lapply(out$ranef, .frame)
  out$coef_frames <- lapply(out$coef, .frame)
  out$py <- py_fit
  out$call <- call
  used <- .deep_r(.py(.hm$bridge$rows_for_r(py_fit)))
  rows <- as.integer(unlist(used$rows))
  cols <- intersect(unlist(used$columns), names(data))
  out$model_frame <- data[rows, cols, drop = FALSE]
  # what Python warned about (dropped rows or columns, a gap above the one asked for) as R warnings
  for (w in unlist(out$warnings)) warning(w, call. = FALSE)
  structure(out, class = "hmio")
}

.per_row <- function(v, data, what) {
  if (!is.numeric(v) || length(v) != nrow(data))
    stop(what, " must be a numeric column of data or one number per row (", nrow(data), ")", call. = FALSE)
  as.double(v)
}

#' @export
print.hmio <- function(x, ...) {
  cat("L0-constrained mixed model (hiermio):", x$formula, "\n")
  cat("Certificate:", x$certificate$status, sprintf("(gap %.3g%%)", 100 * x$certificate$gap), "\n")
  cat("Fixed effects:\n")
  print(x$fixef_vec)
  cat("Nonzero cluster effects:", sum(vapply(x$selected, length, 1L)), "\n")
  invisible(x)
}

#' @export
summary.hmio <- function(object, ...) structure(list(text = object$summary), class = "summary.hmio")

#' @export
print.summary.hmio <- function(x, ...) {
  cat(x$text, "\n")
  invisible(x)
}

#' @method fixef hmio
#' @export
fixef.hmio <- function(object, ...) object$fixef_vec

#' @method ranef hmio
#' @export
ranef.hmio <- function(object, ...) object$ranef_frames

#' @export
coef.hmio <- function(object, ...) object$coef_frames

#' @export
sigma.hmio <- function(object, ...) object$sigma

#' @method VarCorr hmio
#' @export
VarCorr.hmio <- function(x, sigma = 1, ...) {
  v <- x$varcorr
  num <- function(a) as.numeric(unlist(a))
  structure(data.frame(grp = unlist(v$groups), var = unlist(v$names), vcov = num(v$variance), sdcor = num(v$sd),
                       nonzero = num(v$nonzero), levels = num(v$levels), stringsAsFactors = FALSE),
            class = c("VarCorr.hmio", "data.frame"))
}

#' @export
print.VarCorr.hmio <- function(x, ...) {
  cat("Fitted cluster effects (levels that do not differ count as 0):\n")
  print.data.frame(x, row.names = FALSE, digits = 4)
  invisible(x)
}

#' Predictions from an hmio fit
#'
#' The new rows' design is built by the Python side with the training transforms (\code{scale()},
#' \code{poly()}, splines, factor levels), so R and Python give the same numbers. As in lme4,
#' a level not seen in training is an error unless \code{allow.new.levels = TRUE} (population level)
#' or a \code{new.levels} rule is given: "population", "soft", "hard" or "features".
#' @param object An \code{hmio} fit.
#' @param newdata A data frame (the training rows when missing).
#' @param re.form \code{NULL} for cluster effects of known levels, \code{NA} or \code{~0} for population level.
#' @param allow.new.levels Predict unseen levels at population level instead of failing.
#' @param new.levels A rule for unseen levels (implies \code{allow.new.levels}).
#' @param ... Unused.
#' @export
predict.hmio <- function(object, newdata, re.form = NULL, allow.new.levels = FALSE, new.levels = NULL, ...) {
  if (missing(newdata)) return(stats::setNames(unlist(.py(object$py$fitted()$tolist())), NULL))
  if (!inherits(object$py, "python.builtin.object") || reticulate::py_is_null_xptr(object$py))
    stop("this hmio fit no longer has its Python side (it was saved and restored); refit it with hmio()",
         call. = FALSE)
  population <- !is.null(re.form) && (identical(re.form, NA) || (inherits(re.form, "formula") &&
                                                                     length(re.form) == 2 && identical(re.form[[2]], 0)))
  newdata <- as.data.frame(newdata)
  pred <- .py(.hm$bridge$predict_for_r(object$py, .to_pandas(newdata), population, allow.new.levels, new.levels))
  stats::setNames(as.numeric(unlist(pred)), rownames(newdata))
}

#' Plot the cluster effects of an hmio fit, zeros marked
#'
#' One panel per coefficient of the grouping factor: the levels' fitted effects in order, the
#' levels that do not differ from the population (zero) marked apart.
#' @param x An \code{hmio} fit.
#' @param group The grouping factor (default: the first).
#' @param ... Passed to \code{plot}.
#' @examples
#' if (hiermio_available()) plot(hmio(Reaction ~ Days + (1 | Subject), data = lme4::sleepstudy, budget = 3))
#' @export
plot.hmio <- function(x, group = names(x$ranef_frames)[1], ...) {
  re <- x$ranef_frames[[group]]
  k <- ncol(re)
  old <- par(mfrow = c(1, k)); on.exit(par(old))
  for (j in seq_len(k)) {
    v <- re[[j]]
    o <- order(v)
    plot(v[o], seq_along(v), yaxt = "n", pch = ifelse(v[o] == 0, 4, 19), col = ifelse(v[o] == 0, "grey50", "black"),
         xlab = names(re)[j], ylab = "", main = paste(group, names(re)[j]), ...)
    graphics::axis(2, at = seq_along(v), labels = rownames(re)[o], las = 1, cex.axis = 0.6)
    abline(v = 0, lty = 2)
  }
  invisible(x)
}
