# Where the Python side lives. reticulate 1.28 has no py_require(): the Python that has hiermio
# installed is named by RETICULATE_PYTHON (the project's ./run sets it) or by hiermio_python().

.hm <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
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
