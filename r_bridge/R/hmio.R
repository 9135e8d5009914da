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
#' @param weights,offset,subset As in \code{lme4::lmer}: prior weights, a known offset and the rows
#'   to use, each a column of \code{data} (unquoted), an expression of its columns, or a vector with
#'   one value per row (\code{subset}: logical, or row numbers). \code{offset()} terms in the
#'   formula work too.
#' @param REML Accepted for lme4 users' calls; it has no meaning here and is ignored with a warning.
#' @param ... Options of the fit, validated by hiermio's one control object (\code{FitControl}):
#'   \code{ridge} (1; the selection's ridge, relative to the median per-level z'z), \code{selection} ("column": a budget
#'   per term, or "cluster": a level's effects enter together), \code{time_limit} (60 s), \code{gap}
#'   (1e-4), \code{seed}, \code{threads}, \code{certify} (TRUE), \code{na_action} ("drop"),
#'   \code{enumerate_below}, \code{search} ("auto": branch on the fixed effects when every cluster effect belongs to
#'   one grouping factor or to nested ones, else SCIP's outer approximation; or "fixed_effects", "outer_approximation"). A misspelt
#'   option is an error that names it.
#' @details Only the columns of \code{data} the model reads are sent to Python, so a column of any
#'   class the formula does not use is ignored, as in lme4. A Date, POSIXct or difftime column the
#'   formula uses is read as lme4 reads it: as a number (days, seconds, its units) in the fixed part
#'   or a random slope, by its dates' text as a grouping factor.
#' @return An object of class \code{hmio}.
#' @examples
#' if (hiermio_available()) {
#' library(lme4)
#' fit <- hmio(Reaction ~ Days + (Days | Subject), data = sleepstudy, budget = 5)
#' summary(fit); fixef(fit); ranef(fit); VarCorr(fit); sigma(fit)
#' predict(fit, sleepstudy[1:3, ], re.form = NA)
#' }
#' @export
hmio <- function(formula, data, budget, weights = NULL, offset = NULL, REML = NULL, subset = NULL, ...) {
  if (!is.null(REML))
    warning("REML has no meaning for hiermio: the fit is penalised least squares with no variance components ",
            "to estimate, so REML = ", deparse(REML), " is ignored", call. = FALSE)
  budget <- .check_budget(budget)
  rows <- .row_args(data, substitute(weights), substitute(offset), substitute(subset), parent.frame())
  .hmio_fit(.formula_string(formula), rows, budget, match.call(), list(...))
}

# The fit behind hmio() and compare_lmer(): `rows` from .row_args(), `budget` checked.
.hmio_fit <- function(formula, rows, budget, call, options) {
  sent <- .model_data(formula, rows$data, .extra_columns(rows, options))
  if (is.list(budget)) budget <- reticulate::dict(budget)
  py_fit <- .py(do.call(.hm$bridge$fit_object, c(list(formula, sent, budget), rows$options, .py_options(options))))
  .as_hmio(py_fit, call, rows)
}

# An R object for a Python fit: what lme4's generics read, with the Python handle for predict() and
# the rows (and columns) of data the fit used, for fitted(), residuals() and model.frame().
.as_hmio <- function(py_fit, call, rows) {
  data <- rows$data
  out <- .deep_r(.py(.hm$bridge$export_for_r(py_fit)))
  out$fixef_vec <- stats::setNames(as.numeric(unlist(out$fixef$values)), unlist(out$fixef$names))
  out$ranef_frames <- lapply(out$ranef, .frame)
  out$coef_frames <- lapply(out$coef, .frame)
  out$py <- py_fit
  out$call <- call
  out$offset <- rows$offset  # the offset= argument, evaluated again on new rows by predict()
  used <- .deep_r(.py(.hm$bridge$rows_for_r(py_fit)))
  rows <- as.integer(unlist(used$rows))
  cols <- intersect(unlist(used$columns), names(data))
  out$model_frame <- data[rows, cols, drop = FALSE]
  # what Python warned about (dropped rows or columns, a gap above the one asked for) as R warnings
  for (w in unlist(out$warnings)) warning(.r_message(w), call. = FALSE)
  structure(out, class = "hmio")
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
#' or a \code{new.levels} rule is given: "population", "soft", "hard" or "features". The fit's
#' \code{offset} argument is evaluated on \code{newdata} (as \code{predict.lm} does), so it must be a
#' column of the data or an expression of its columns.
#' @param object An \code{hmio} fit.
#' @param newdata A data frame (the training rows when missing).
#' @param re.form As in lme4: \code{NULL} for every random term; \code{NA}, \code{~0} or
#'   \code{FALSE} for population level; a formula of random terms, such as \code{~(1 | Subject)},
#'   for the cluster effects of those terms only (matched as lme4 matches them, by grouping factor
#'   and coefficient: \code{~(1 | Subject)} on a model with \code{(Days | Subject)} keeps the
#'   intercepts). A term the model does not have is an error.
#' @param allow.new.levels Predict unseen levels at population level instead of failing.
#' @param new.levels A rule for unseen levels (implies \code{allow.new.levels}).
#' @param ... Unused.
#' @export
predict.hmio <- function(object, newdata, re.form = NULL, allow.new.levels = FALSE, new.levels = NULL, ...) {
  if (!inherits(object$py, "python.builtin.object") || reticulate::py_is_null_xptr(object$py))
    stop("this hmio fit no longer has its Python side (it was saved and restored); refit it with hmio()",
         call. = FALSE)
  if (!(isTRUE(allow.new.levels) || isFALSE(allow.new.levels)))
    stop("allow.new.levels must be TRUE or FALSE, got ", paste(deparse(allow.new.levels), collapse = " "), call. = FALSE)
  re_form <- .re_form(re.form)
  if (missing(newdata)) {
    pred <- .py(.hm$bridge$predict_for_r(object$py, NULL, re_form, allow.new.levels, new.levels))
    return(stats::setNames(as.numeric(unlist(pred)), rownames(object$model_frame)))
  }
  newdata <- as.data.frame(newdata)
  if (!is.null(object$offset)) newdata$.hiermio_offset <- .offset_for(object$offset, newdata)
  # the columns re.form names travel too, so that a term the model lacks is named as such
  sent <- .model_data(object$formula, newdata, c(".hiermio_offset", if (inherits(re.form, "formula")) all.vars(re.form)),
                      response = FALSE)
  pred <- .py(.hm$bridge$predict_for_r(object$py, sent, re_form, allow.new.levels, new.levels))
  stats::setNames(as.numeric(unlist(pred)), rownames(newdata))
}

# lme4's re.form for Python: NULL (every term), "~0" (NA, FALSE or ~0: population level) or the
# text of a formula of random terms, which Python matches against the model's.
.re_form <- function(re.form) {
  if (is.null(re.form)) return(NULL)
  if (inherits(re.form, "formula")) {
    if (length(re.form) != 2L) stop("re.form must be a one-sided formula such as ~(1 | g), got ",
                                    paste(deparse(re.form), collapse = " "), call. = FALSE)
    return(.formula_string(re.form))
  }
  if (is.atomic(re.form) && length(re.form) == 1L && (is.na(re.form) || isFALSE(re.form))) return("~0")
  if (is.character(re.form) && length(re.form) == 1L) return(re.form)
  stop("re.form must be NULL (every random term), NA, ~0 or FALSE (population level) or a formula of the ",
       "model's random terms such as ~(1 | g); got ", paste(deparse(re.form), collapse = " "), call. = FALSE)
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
