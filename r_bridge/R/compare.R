#' Fit by MIO and by lme4 (natively in R), side by side
#'
#' lme4 runs here in R; MIO runs in Python through reticulate. Warnings and singular fits of lme4
#' are captured, and an lme4 failure is reported, not raised.
#' @param formula An lme4 formula.
#' @param data A data frame.
#' @param budget MIO budget: a whole number, a named list, or "cv" (cross-validated in Python on
#'   the same rows, weights and offset, with the options in \code{...}).
#' @param REML Passed to \code{lme4::lmer}.
#' @param weights,offset,subset For both fits, as in \code{\link{hmio}}: a column of \code{data}
#'   (unquoted), an expression of its columns, or a vector with one value per row.
#' @param ... Further arguments to \code{hmio}.
#' @return An object of class \code{hmio_compare}.
#' @examples
#' if (hiermio_available()) compare_lmer(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2, budget = 2)
#' @export
compare_lmer <- function(formula, data, budget = 5, REML = TRUE, weights = NULL, offset = NULL, subset = NULL, ...) {
  budget <- .check_budget(budget, cv = TRUE)
  rows <- .row_args(data, substitute(weights), substitute(offset), substitute(subset), parent.frame())
  f <- .formula_string(formula)
  options <- list(...)
  if (identical(budget, "cv")) {
    # the budget the same fit would get from hmio_cv(): the same rows, weights, offset and options
    sent <- .model_data(f, rows$data, .extra_columns(rows, options))
    # the folds screen, as Python's compare does; the chosen budget's fit below follows `certify`
    cv_options <- .py_options(options[setdiff(names(options), "certify")])
    chosen <- .py(do.call(.hm$module$cv, c(list(f, sent, progress = FALSE), rows$options, cv_options)))
    budget <- as.integer(chosen$best_budget_)
  }
  call <- match.call()
  call[[1L]] <- quote(hmio)
  call$REML <- NULL
  call$budget <- budget
  mio <- .hmio_fit(f, rows, budget, call, options)
  data <- rows$data
  warns <- character(0); msgs <- character(0)
  lmer_formula <- if (inherits(formula, "formula")) formula else stats::as.formula(f)
  ref <- tryCatch(withCallingHandlers(.lmer_fit(lmer_formula, data, REML, data[[".hiermio_weights"]],
                                                        data[[".hiermio_offset"]]),
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

# lme4::lmer on the rows, weights and offset MIO used (they are columns of data). lme4 looks up
# variables named weights and offset in the frame that calls it and copies them into the formula's
# environment: it is called from here, where they are the vectors, with an environment of its own.
.lmer_fit <- function(formula, data, REML, weights = NULL, offset = NULL) {
  environment(formula) <- new.env(parent = environment(formula))
  args <- list(formula = formula, data = quote(data), REML = REML)
  if (!is.null(weights)) args$weights <- quote(.hiermio_weights)
  if (!is.null(offset)) args$offset <- quote(.hiermio_offset)
  eval(as.call(c(quote(lme4::lmer), args)))
}
