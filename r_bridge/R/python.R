# Where the Python side lives. reticulate 1.28 has no py_require(): the Python that has hiermio
# installed is named by RETICULATE_PYTHON (the project's ./run sets it) or by hiermio_python().

.hm <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  # without RETICULATE_PYTHON, the virtual environment install_hiermio() made is used if it exists
  if (!nzchar(Sys.getenv("RETICULATE_PYTHON"))) {
    env <- getOption("hiermio.envname", "r-hiermio")
    if (isTRUE(tryCatch(reticulate::virtualenv_exists(env), error = function(e) FALSE)))
      try(reticulate::use_virtualenv(env, required = FALSE), silent = TRUE)
  }
  .hm$module <- reticulate::import("hiermio", delay_load = TRUE)
  .hm$bridge <- reticulate::import("hiermio.rbridge", delay_load = TRUE)
}

#' Point the package at the Python environment that has hiermio installed
#'
#' Call before the first fit of a session when RETICULATE_PYTHON is not set.
#' @param python Path to the Python executable, e.g. the project's \code{.venv/bin/python}.
#' @return The path, invisibly.
#' @examples
#' py <- Sys.getenv("RETICULATE_PYTHON")
#' if (nzchar(py)) hiermio_python(py)
#' @export
hiermio_python <- function(python) {
  if (!file.exists(python)) stop("no Python executable at '", python, "'", call. = FALSE)
  Sys.setenv(RETICULATE_PYTHON = python)
  reticulate::use_python(python, required = TRUE)
  invisible(python)
}

#' Is the hiermio Python package reachable?
#' @return TRUE or FALSE.
#' @examples
#' hiermio_available()
#' @export
hiermio_available <- function() {
  isTRUE(tryCatch(reticulate::py_module_available("hiermio"), error = function(e) FALSE))
}

# Python errors arrive as R errors carrying the Python message only, not a traceback dump, spoken
# in R (see .r_message).
.py <- function(expr) {
  tryCatch(expr, error = function(e) {
    msg <- conditionMessage(e)
    msg <- sub("(?s)\n*(Run `reticulate::py_last_error\\(\\)`|Detailed traceback).*$", "", msg, perl = TRUE)
    msg <- sub("^.*?(\\w+(Error|Exception)): ", "\\1: ", msg, perl = TRUE)
    stop(.r_message(sub("\\s+$", "", msg)), call. = FALSE)
  })
}

# Python's spelling of the options whose R argument is spelt otherwise, and R's.
.r_names <- c(allow_new_levels = "allow.new.levels", new_levels = "new.levels", re_form = "re.form")

# A message from Python (an error or a warning) as an R user reads it: the R functions' argument
# names (allow.new.levels = TRUE, not allow_new_levels=True), R's TRUE, FALSE, NULL and NA, and the
# weights and offset arguments by name, not the columns that carry them to Python.
.r_message <- function(msg) {
  for (py in names(.r_names)) {
    msg <- gsub(paste0("\\b", py, "\\s*=\\s*"), paste0(.r_names[[py]], " = "), msg, perl = TRUE)
    msg <- gsub(paste0("\\b", py, "\\b"), .r_names[[py]], msg, perl = TRUE)
  }
  words <- c(True = "TRUE", False = "FALSE", None = "NULL", nan = "NA")
  for (w in names(words)) msg <- gsub(paste0("\\b", w, "\\b"), words[[w]], msg, perl = TRUE)
  msg <- gsub("\\b(\\w+)=(TRUE|FALSE|NULL|NA)\\b", "\\1 = \\2", msg, perl = TRUE)  # certify = FALSE
  gsub("'?\\.hiermio_(weights|offset)'?", "\\1", msg, perl = TRUE)
}

# Options for Python: an NA (which reticulate sends as True) goes as NaN, so Python's validation
# names it ("got NA" once spoken in R).
.py_options <- function(options) {
  lapply(options, function(v) if (is.atomic(v) && length(v) == 1L && is.na(v)) NA_real_ else v)
}

# R data frames cross faithfully: factors keep their levels and order (pandas Categorical, ordered
# ones ordered), characters stay text, integer columns with NA become doubles so NA arrives as NaN.
# Dates and times are read as lme4 reads them: a grouping factor (a name in `groups`) by factor()'s
# levels, anything else as its number (days, seconds, the difftime's units).
# Columns are sent one by one (a one-row data frame would otherwise arrive as scalars); the index
# keeps the number of rows when no column is sent.
.to_pandas <- function(data, groups = character()) {
  data <- as.data.frame(data)
  pd <- reticulate::import("pandas", convert = FALSE)
  vec <- function(x) if (length(x) == 1L) as.list(x) else x
  cols <- list()
  for (nm in names(data)) {
    col <- data[[nm]]
    if (inherits(col, c("Date", "POSIXt", "difftime"))) col <- if (nm %in% groups) factor(col) else as.numeric(col)
    if (is.factor(col)) {
      codes <- as.integer(col) - 1L
      codes[is.na(codes)] <- -1L
      cols[[nm]] <- pd$Categorical$from_codes(vec(codes), categories = as.list(levels(col)),
                                               ordered = is.ordered(col))
    } else if (is.character(col)) {
      cols[[nm]] <- pd$Series(vec(ifelse(is.na(col), NA_character_, col)), dtype = "object")
    } else if (is.logical(col)) {
      cols[[nm]] <- if (anyNA(col)) vec(as.double(col)) else vec(col)
    } else if (is.numeric(col)) {
      cols[[nm]] <- vec(as.double(col))
    } else {
      stop("column '", nm, "' has class ", class(col)[1], "; convert it to a number, factor or text", call. = FALSE)
    }
  }
  pd$DataFrame(reticulate::dict(cols), index = pd$RangeIndex(nrow(data)))
}

# The columns of data the model reads (and `extra` ones: weights, offset, cluster features), for
# Python. Only these cross: a column the formula does not use (a Date, a list) is not the model's
# business, as in lme4. With `response` (a fit), a column the formula names but data lack is an
# error naming it, with Python's hint, before anything else crosses.
.model_data <- function(formula, data, extra = character(), response = TRUE) {
  used <- .deep_r(.py(.hm$bridge$columns_for_r(formula, as.list(names(data)), response)))
  cols <- union(unlist(used$columns), intersect(extra, names(data)))
  .to_pandas(data[, cols, drop = FALSE], groups = unlist(used$groups))
}

# weights, offset and subset as lme4 reads them, one reading for every entry point: each a column
# of data (unquoted), an expression of its columns, or a vector with one value per row, evaluated
# in data and then in `env` (where the user's call was made). weights and offset are taken on all
# the rows, then subset keeps rows (as model.frame does). They travel to Python as columns of the
# data, so folds, resamples and half-samples split them with their rows.
# Returns the data (subset, the vectors as columns), the options naming those columns, and the
# offset's expression with the environment to evaluate it in, for predict() on new rows.
.row_args <- function(data, weights, offset, subset, env) {
  data <- as.data.frame(data)
  n <- nrow(data)
  value <- function(expr, what) {
    tryCatch(eval(expr, data, env), error = function(e)
      stop(what, " = ", paste(deparse(expr), collapse = " "), " cannot be evaluated: ", conditionMessage(e), call. = FALSE))
  }
  options <- list()
  for (what in c("weights", "offset")) {
    v <- value(list(weights = weights, offset = offset)[[what]], what)
    if (is.null(v)) next
    if (!is.numeric(v) || !is.null(dim(v)) || length(v) != n)
      stop(what, " must be a numeric column of data or one number per row (", n, "), got ",
           if (is.numeric(v)) paste(length(v), "values") else paste("a", class(v)[1]), call. = FALSE)
    col <- paste0(".hiermio_", what)
    data[[col]] <- as.double(v)
    options[[what]] <- col
  }
  keep <- value(subset, "subset")
  if (!is.null(keep)) {
    ok <- if (is.logical(keep)) length(keep) == n
          else is.numeric(keep) && !anyNA(keep) && all(keep == round(keep)) && all(abs(keep) <= n) &&
               (all(keep >= 0) || all(keep <= 0))
    if (!ok)
      stop("subset must be a logical with one value per row (", n, ") or row numbers within 1..", n, call. = FALSE)
    if (is.logical(keep)) keep <- keep & !is.na(keep)  # as model.frame: NA drops the row
    data <- data[keep, , drop = FALSE]
    if (nrow(data) == 0L) stop("subset keeps no rows", call. = FALSE)
  }
  list(data = data, options = options, offset = if (!is.null(options[["offset"]])) list(expr = offset, env = env))
}

# The offset= argument of a fit, evaluated on new rows (as predict.lm does; lme4 ignores it there):
# a column of newdata or an expression of its columns.
.offset_for <- function(offset, newdata) {
  v <- tryCatch(eval(offset$expr, newdata, offset$env), error = function(e)
    stop("the fit's offset = ", paste(deparse(offset$expr), collapse = " "), " cannot be evaluated on newdata: ",
         conditionMessage(e), call. = FALSE))
  if (!is.numeric(v) || length(v) != nrow(newdata))
    stop("the fit's offset = ", paste(deparse(offset$expr), collapse = " "), " gives ", length(v), " values for the ",
         nrow(newdata), " rows of newdata; fit with an offset that is a column of data (or an expression of its ",
         "columns) to predict new rows", call. = FALSE)
  as.double(v)
}

# The columns besides the formula's that Python reads: the weights and offset (from .row_args()) and
# the cluster features of the "features" rule for new levels.
.extra_columns <- function(rows, options) {
  c(unlist(rows$options), unlist(options[["cluster_features", exact = TRUE]]))
}

# The budget as hmio() and friends take it: a whole number >= 0, a pair c(below, above) (a tail
# budget), a named list of them by term label or grouping factor, or (where `cv`) "cv". Checked in R
# so that NA is named as NA (reticulate would send it as True).
.check_budget <- function(budget, cv = FALSE) {
  whole <- function(b) is.numeric(b) && length(b) %in% 1:2 && is.null(dim(b)) && !anyNA(b) && all(b >= 0) &&
    all(b == round(b)) && all(is.finite(b))
  ok <- if (cv && identical(budget, "cv")) TRUE
        else if (is.list(budget)) length(budget) > 0 && !is.null(names(budget)) && all(nzchar(names(budget))) &&
                                   all(vapply(budget, whole, TRUE))
        else whole(budget)
  if (!ok)
    stop("budget must be a whole number >= 0 (or a tail budget c(below, above)), a named list of them",
         if (cv) ", or \"cv\"" else " by term or grouping factor", "; got ", paste(deparse(budget), collapse = " "),
         call. = FALSE)
  budget
}

# Budgets to sweep: whole numbers >= 0 (or "auto" where allowed).
.check_budgets <- function(budgets, auto = FALSE) {
  if (auto && identical(budgets, "auto")) return(budgets)
  if (!is.numeric(budgets) || length(budgets) == 0L || anyNA(budgets) || any(!is.finite(budgets)) ||
      any(budgets < 0) || any(budgets != round(budgets)))
    stop("budgets must be whole numbers >= 0", if (auto) " or \"auto\"" else "", "; got ",
         paste(deparse(budgets), collapse = " "), call. = FALSE)
  as.list(as.numeric(budgets))
}

# reticulate leaves numpy arrays nested in dicts as Python objects: convert the whole tree.
.deep_r <- function(x) {
  if (inherits(x, "python.builtin.object")) x <- reticulate::py_to_r(x)
  if (is.list(x) && !is.data.frame(x)) x[] <- lapply(x, .deep_r)
  x
}

.frame <- function(x) {
  values <- matrix(as.numeric(unlist(x$values)), nrow = length(x$rownames))
  out <- as.data.frame(values)
  names(out) <- unlist(x$columns)
  rownames(out) <- unlist(x$rownames)
  out
}

#' Install the hiermio Python package for R
#'
#' Creates a Python virtual environment (reticulate's \code{virtualenv_create()}) and installs
#' hiermio into it with pip (\code{virtualenv_install()}), as the tensorflow and keras R packages
#' do. In a new R session \code{hmio()} finds it on its own: when \code{RETICULATE_PYTHON} is not
#' set, the package uses the virtual environment \code{envname} if it exists (the option
#' \code{hiermio.envname} names another). The project's \code{./run setup} keeps using its own
#' \code{.venv} through \code{RETICULATE_PYTHON}.
#' @param source Where pip gets hiermio: a checkout of its repository (a directory with
#'   \code{pyproject.toml}), a built wheel, or a pip requirement. Default: the \code{HIERMIO_SOURCE} environment
#'   variable, else \code{"hiermio"}.
#' @param envname Name of the virtual environment.
#' @param python The Python that creates it (default: reticulate's choice).
#' @param pip_options Extra pip options, e.g. \code{c("--no-index", "--find-links=wheels/")} offline.
#' @return The environment's Python executable, invisibly.
#' @examples
#' \dontrun{
#' install_hiermio("~/src/hiermio")   # a checkout of hiermio's repository
#' }
#' @export
install_hiermio <- function(source = Sys.getenv("HIERMIO_SOURCE", "hiermio"), envname = "r-hiermio", python = NULL,
                            pip_options = character()) {
  if (!is.character(source) || length(source) != 1 || !nzchar(source))
    stop("source must be one directory or pip requirement, got ", deparse(source), call. = FALSE)
  if (dir.exists(source)) {
    if (!file.exists(file.path(source, "pyproject.toml")))
      stop("'", source, "' has no pyproject.toml: it is not a checkout of hiermio", call. = FALSE)
    source <- normalizePath(source)
  } else if (file.exists(source)) {
    source <- normalizePath(source)  # a built wheel
  }
  reticulate::virtualenv_create(envname, python = python, packages = FALSE)  # no pip upgrade: works offline
  reticulate::virtualenv_install(envname, packages = source, pip_options = pip_options)
  py <- reticulate::virtualenv_python(envname)
  message("hiermio is installed in the virtual environment '", envname, "' (", py, "); ",
          "in a new R session hmio() uses it")
  invisible(py)
}
