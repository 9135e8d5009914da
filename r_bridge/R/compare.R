#' Fit by MIO and by lme4 (natively in R), side by side
#'
#' lme4 runs here in R; MIO runs in Python through reticulate. Warnings and singular fits of lme4
#' are captured, and an lme4 failure is reported, not raised.
#' @param formula An lme4 formula.
#' @param data A data frame.
#' @param budget MIO budget: a whole number, a named list, or "cv" (cross-validated in Python).
#' @param REML Passed to \code{lme4::lmer}.
#' @param weights Prior weights for both fits: a column of \code{data} (unquoted) or one number per row.
#' @param ... Further arguments to \code{hmio}.
#' @return An object of class \code{hmio_compare}.
#' @examples
#' if (hiermio_available()) compare_lmer(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2, budget = 2)
#' @export
compare_lmer <- function(formula, data, budget = 5, REML = TRUE, weights = NULL, ...) {
  data <- as.data.frame(data)
  w <- eval(substitute(weights), data, parent.frame())
  if (identical(budget, "cv")) {
    f <- .formula_string(formula)
    chosen <- .py(.hm$module$cv(f, .to_pandas(data)))
    budget <- as.integer(chosen$best_budget_)
  }
  mio <- hmio(formula, data, budget = budget, weights = w, ...)
  warns <- character(0); msgs <- character(0)
  data$.hiermio_weights <- w
  lmer_call <- if (is.null(w)) quote(lme4::lmer(formula, data = data, REML = REML))
               else quote(lme4::lmer(formula, data = data, REML = REML, weights = .hiermio_weights))
  ref <- tryCatch(withCallingHandlers(eval(lmer_call),
                    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
                    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }),
                  error = function(e) e)
  if (inherits(ref, "error")) {
    status <- "failed"; lme4_msgs <- c(conditionMessage(ref), warns, msgs); fe_lmer <- NULL; sigma_lmer <- NA
  } else {
    conv <- ref@optinfo$conv$lme4$messages
    lme4_msgs <- unique(c(conv, warns, msgs))
    # lme4's status is decided once, in Python, for both languages
    status <- .py(.hm$bridge$lmer_status(isSingular(ref), as.list(as.character(conv)), as.list(warns)))
    fe_lmer <- fixef(ref); sigma_lmer <- sigma(ref)
  }
  names_all <- union(names(fixef(mio)), names(fe_lmer))
  table <- data.frame(MIO = unname(fixef(mio)[names_all]),
                      lme4 = if (is.null(fe_lmer)) NA_real_ else unname(fe_lmer[names_all]),
                      row.names = names_all)
  table["sigma", ] <- c(sigma(mio), sigma_lmer)
  structure(list(mio = mio, lmer = if (inherits(ref, "error")) NULL else ref, table = table,
                 status = c(MIO = mio$certificate$status, lme4 = status), messages = lme4_msgs, budget = budget),
            class = "hmio_compare")
}

#' @export
print.hmio_compare <- function(x, ...) {
  cat("MIO (budget ", paste(unlist(x$budget), collapse = ", "), ") and lme4, side by side\n", sep = "")
  cat("status: MIO", x$status[["MIO"]], "| lme4", x$status[["lme4"]], "\n")
  print(x$table, digits = 5)
  if (length(x$messages)) cat("lme4 says:", paste0("\n  ", x$messages), "\n")
  invisible(x)
}
