# lme4's and stats' generics for hmio fits. Each reads the Python fit, so R and Python agree to the
# last digit; where a generic has no meaning for a distribution-free fit it says so.

.named_rows <- function(object, values) stats::setNames(as.numeric(unlist(values)), rownames(object$model_frame))

#' Fitted values, residuals, observations, formula and model frame of an hmio fit
#'
#' \code{fitted} and \code{residuals} are per row used (rows with missing values were dropped),
#' named by the data's row names; \code{fitted + residuals} is the response.
#' @param object An \code{hmio} fit.
#' @param ... Unused.
#' @examples
#' if (hiermio_available()) {
#' fit <- hmio(Reaction ~ Days + (1 | Subject), data = lme4::sleepstudy, budget = 3)
#' all.equal(unname(fitted(fit) + residuals(fit)), lme4::sleepstudy$Reaction)
#' nobs(fit); formula(fit)
#' }
#' @name hmio-generics
NULL

#' @rdname hmio-generics
#' @export
fitted.hmio <- function(object, ...) .named_rows(object, .py(.hm$bridge$fitted_for_r(object$py)))

#' @rdname hmio-generics
#' @export
residuals.hmio <- function(object, ...) .named_rows(object, .py(.hm$bridge$residuals_for_r(object$py)))

#' @rdname hmio-generics
#' @export
nobs.hmio <- function(object, ...) as.integer(object$nobs)

#' @rdname hmio-generics
#' @param x An \code{hmio} fit.
#' @export
formula.hmio <- function(x, ...) stats::as.formula(x$formula)

#' @rdname hmio-generics
#' @param formula An \code{hmio} fit (\code{model.frame}'s argument name).
#' @export
model.frame.hmio <- function(formula, ...) formula$model_frame

#' Covariance and confidence intervals of the fixed effects
#'
#' \code{kind = "robust"} (the summary's): cluster-robust CR1 by the coarsest grouping factor,
#' selection-aware; \code{"support"}: the same given the selected support; \code{"conditional"}:
#' every unselected cluster exactly the population. \code{confint} also takes \code{"bootstrap"}
#' (percentiles of \code{B} cluster-bootstrap refits, each re-selecting).
#' @param object An \code{hmio} fit.
#' @param kind Which covariance.
#' @param cluster The grouping factor to cluster by (default: the coarsest).
#' @param parm Coefficients (names or positions; default all).
#' @param level Confidence level.
#' @param B Bootstrap resamples (\code{kind = "bootstrap"}).
#' @param ... Unused.
#' @examples
#' if (hiermio_available()) {
#' fit <- hmio(Reaction ~ Days + (1 | Subject), data = lme4::sleepstudy, budget = 3)
#' vcov(fit); confint(fit)
#' }
#' @export
vcov.hmio <- function(object, kind = c("robust", "support", "conditional"), cluster = NULL, ...) {
  kind <- match.arg(kind)
  v <- .deep_r(.py(.hm$bridge$vcov_for_r(object$py, kind, cluster)))
  nm <- unlist(v$names)
  matrix(as.numeric(unlist(v$values)), length(nm), length(nm), dimnames = list(nm, nm))
}

#' @rdname vcov.hmio
#' @export
confint.hmio <- function(object, parm, level = 0.95, kind = c("robust", "support", "conditional", "bootstrap"),
                         B = 200, ...) {
  kind <- match.arg(kind)
  ci <- .table(.deep_r(.py(.hm$bridge$confint_for_r(object$py, level, kind, B))))
  out <- as.matrix(ci)
  if (!missing(parm)) out <- out[parm, , drop = FALSE]
  out
}

.no_likelihood <- function(what) {
  stop(what, " is not defined for hiermio fits: they are least squares under an L0 budget, with no ",
       "distribution and so no likelihood. Compare budgets by cross-validation (hmio_cv) or by ",
       "the objective in summary(); compare with lme4 through compare_lmer().", call. = FALSE)
}

#' No likelihood: logLik, AIC, BIC and anova say why
#' @param object An \code{hmio} fit.
#' @param ... Unused.
#' @export
logLik.hmio <- function(object, ...) .no_likelihood("logLik (and so AIC and BIC)")

#' @rdname logLik.hmio
#' @export
anova.hmio <- function(object, ...) .no_likelihood("anova")

# A table from Python (rownames, names, one list per column) as a data.frame.
.table <- function(x) {
  cols <- lapply(x$columns, function(v) { v <- unlist(v); if (is.null(v)) logical(0) else v })
  out <- as.data.frame(stats::setNames(cols, unlist(x$names)), stringsAsFactors = FALSE, check.names = FALSE)
  rn <- unlist(x$rownames)
  if (length(rn) == nrow(out) && !identical(rn, as.character(seq_len(nrow(out)) - 1L))) rownames(out) <- rn
  out
}
