# Runs the package's testthat suite and ends with one plain line "testthat: N passed, N failed";
# exits non-zero when anything failed. Used by the project's ./run test.
library(testthat)
library(hiermio)
res <- as.data.frame(test_dir(file.path("r_bridge", "tests", "testthat"), reporter = "summary",
                              stop_on_failure = FALSE))
failed <- sum(res$failed) + sum(res$error)
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n", sum(res$nb) - sum(res$failed), failed, sum(res$skipped)))
quit(status = if (failed > 0) 1 else 0)
