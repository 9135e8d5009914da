#' hiermio: mixed models with L0-constrained cluster effects
#'
#' \code{\link{hmio}} fits an lme4 formula with at most a budget of cluster effects per term,
#' certified by SCIP through the hiermio Python package; \code{\link{compare_lmer}} puts lme4's fit
#' beside it; \code{\link{hmio_cv}}, \code{\link{hmio_path}}, \code{\link{hmio_stability}},
#' \code{\link{hmio_bootstrap}} and \code{\link{hmio_ranking}} carry the analysis around it.
#' @keywords internal
#' @importFrom lme4 fixef ranef VarCorr lmer isSingular
#' @importFrom stats coef sigma predict fitted residuals vcov confint nobs formula model.frame logLik anova as.formula
#' @importFrom graphics plot points abline legend par segments lines
"_PACKAGE"
