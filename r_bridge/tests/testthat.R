library(testthat)
library(hiermio)
test_check("hiermio")
