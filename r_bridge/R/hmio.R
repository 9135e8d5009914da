#' Fit an lme4 formula with L0-constrained cluster effects (mixed-integer optimization)
#'
#' At most \code{budget} cluster effects per random term differ from zero; SCIP certifies how close
#' to optimal the fit is. The result is a plain R object that answers lme4's generics.
#'
#' @param formula An lme4 formula, e.g. \code{Reaction ~ Days + (Days | Subject)}.
#' @param data A data frame.
#' @param budget Whole number (every term), or a named list by term label or grouping factor.
#' @param ridge Ridge weight relative to the median per-level z'z of each column.
#' @param selection "column" (a budget per term) or "cluster" (a level's effects enter together).
#' @param time_limit,gap Stop after this many seconds or at this relative gap.
#' @param seed SCIP's random seed.
#' @return An object of class \code{hmio}.
#' @examples
#' if (hiermio_available()) {
#' library(lme4)
#' fit <- hmio(Reaction ~ Days + (Days | Subject), data = sleepstudy, budget = 5)
#' summary(fit); fixef(fit); ranef(fit); VarCorr(fit); sigma(fit)
#' predict(fit, sleepstudy[1:3, ], re.form = NA)
#' }
hmio <- function(formula, data, budget, ridge = 0.1, selection = c("column", "cluster"),
                 time_limit = 60, gap = 1e-4, seed = 0L) {
  selection <- match.arg(selection)
  if (inherits(formula, "formula")) formula <- paste(deparse(formula, width.cutoff = 500L), collapse = " ")
  if (!is.character(formula) || length(formula) != 1) stop("formula must be a formula or one string", call. = FALSE)
  if (is.list(budget)) budget <- reticulate::dict(budget)
  out <- .deep_r(.py(.hm$bridge$fit_for_r(formula, .to_pandas(data), budget, ridge = ridge, selection = selection,
                                          time_limit = time_limit, gap = gap, seed = as.integer(seed))))
  out$fixef_vec <- stats::setNames(as.numeric(unlist(out$fixef$values)), unlist(out$fixef$names))
  out$ranef_frames <- lapply(out$ranef, .frame)
  out$coef_frames <- lapply(out$coef, .frame)
  out$call <- match.call()
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

#' @export
fixef.hmio <- function(object, ...) object$fixef_vec

#' @export
ranef.hmio <- function(object, ...) object$ranef_frames

#' @export
coef.hmio <- function(object, ...) object$coef_frames

#' @export
sigma.hmio <- function(object, ...) object$sigma

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

# Model matrix of a one-sided formula text on new data, columns named as lme4 names them.
.mm <- function(rhs, newdata) {
  mm <- stats::model.matrix(stats::as.formula(paste("~", rhs)), newdata)
  colnames(mm)[colnames(mm) == "(Intercept)"] <- "(Intercept)"
  mm
}

#' Predictions from an hmio fit
#'
#' Computed in R from the stored estimates: fixed part plus, unless \code{re.form = NA}, the cluster
#' effects of known levels. Unknown levels are predicted at population level when
#' \code{allow.new.levels = TRUE}.
#' @export
predict.hmio <- function(object, newdata, re.form = NULL, allow.new.levels = TRUE, ...) {
  if (missing(newdata)) stop("predict.hmio needs newdata", call. = FALSE)
  newdata <- as.data.frame(newdata)
  X <- .mm(object$fixed, newdata)
  fe <- object$fixef_vec
  missing_cols <- setdiff(names(fe), colnames(X))
  if (length(missing_cols)) stop("newdata does not give the fixed-effect column(s) ", paste(missing_cols, collapse = ", "), call. = FALSE)
  pred <- drop(X[, names(fe), drop = FALSE] %*% fe)
  if (!is.null(re.form) && (identical(re.form, NA) || identical(re.form, ~0))) return(pred)
  for (t in object$terms) {
    groups <- strsplit(t$group, ":", fixed = TRUE)[[1]]
    level <- do.call(paste, c(lapply(groups, function(g) as.character(newdata[[g]])), sep = ":"))
    re <- object$ranef_frames[[t$group]]
    known <- level %in% rownames(re)
    if (!all(known) && !allow.new.levels)
      stop("grouping factor '", t$group, "' has level(s) not seen in training: ",
           paste(utils::head(unique(level[!known]), 5), collapse = ", "), call. = FALSE)
    Z <- .mm(t$expr, newdata)
    cols <- unlist(t$coef_names)
    eff <- as.matrix(re[ifelse(known, level, rownames(re)[1]), cols, drop = FALSE])
    pred <- pred + ifelse(known, rowSums(Z[, cols, drop = FALSE] * eff), 0)
  }
  pred
}

#' Plot the cluster effects of an hmio fit, zeros marked
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
