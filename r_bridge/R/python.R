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

# Python errors arrive as R errors carrying the Python message only, not a traceback dump.
.py <- function(expr) {
  tryCatch(expr, error = function(e) {
    msg <- conditionMessage(e)
    msg <- sub("(?s)\n*(Run `reticulate::py_last_error\\(\\)`|Detailed traceback).*$", "", msg, perl = TRUE)
    msg <- sub("^.*?(\\w+(Error|Exception)): ", "\\1: ", msg, perl = TRUE)
    stop(msg, call. = FALSE)
  })
}

# R data frames cross faithfully: factors keep their levels and order (pandas Categorical, ordered
# ones ordered), characters stay text, integer columns with NA become doubles so NA arrives as NaN.
# Columns are sent one by one (a one-row data frame would otherwise arrive as scalars).
.to_pandas <- function(data) {
  data <- as.data.frame(data)
  pd <- reticulate::import("pandas", convert = FALSE)
  vec <- function(x) if (length(x) == 1L) as.list(x) else x
  cols <- list()
  for (nm in names(data)) {
    col <- data[[nm]]
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
  pd$DataFrame(reticulate::dict(cols))
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
