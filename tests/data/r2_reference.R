# performance / insight reference numbers for lc.r2 and lc.icc (Nakagawa & Schielzeth 2013 with
# Johnson 2014's random-slope variance). Run from tests/data:
#   Rscript r2_reference.R        (writes r2_reference.json)
# R 4.2.2, lme4 1.1-31, performance 0.10.2, insight 0.19.0, jsonlite (Debian bookworm's r-cran-*).
# The data are the CSVs shipped in lmmcompare/datasets/data, factor levels in the order of
# schema.json (as the package loads them).  Each case records lme4's fit (theta, sigma, fixef, so a
# test can first check it fits the same model), performance::r2_nakagawa, performance::icc and
# insight::get_variance's var.fixed, var.random, var.residual; NA (JSON null) where performance gives
# none (a singular fit), with the message it printed.  "johnson_var_random" is Johnson's (2014)
# term variance with each term's own model columns, sum_k mean(diag(Z_k Sigma_k Z_k')), computed
# here by hand: it differs from insight's where a random-term column is not a fixed-effect column
# (insight keeps only the columns of Sigma_k named like a column of X).
suppressMessages({library(lme4); library(performance); library(insight); library(jsonlite)})
source("shipped_data.R")   # load_ds(name): a shipped data set with the package's factor levels
sleep <- load_ds("sleepstudy"); dye <- load_ds("Dyestuff"); dye2 <- load_ds("Dyestuff2")
orth <- load_ds("Orthodont"); pen <- load_ds("Penicillin")
sleep$w <- 1 + (sleep$Days %% 3)

cases <- list(
  list(id = "sleep_intercept", data = "sleepstudy", formula = "Reaction ~ Days + (1 | Subject)"),
  list(id = "dyestuff", data = "Dyestuff", formula = "Yield ~ 1 + (1 | Batch)"),
  list(id = "penicillin_crossed", data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list(id = "sleep_slopes", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)"),
  list(id = "sleep_slopes_ml", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", reml = FALSE),
  list(id = "sleep_uncorrelated", data = "sleepstudy", formula = "Reaction ~ Days + (Days || Subject)"),
  list(id = "orthodont", data = "Orthodont", formula = "distance ~ age * Sex + (age | Subject)"),
  list(id = "sleep_slopes_weighted", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
       weights = "w", weights_r = "1 + (Days %% 3)"),
  list(id = "sleep_offset", data = "sleepstudy", formula = "Reaction ~ Days + offset(2 * Days) + (Days | Subject)"),
  list(id = "sleep_slope_not_fixed", data = "sleepstudy", formula = "Reaction ~ 1 + (Days | Subject)"),
  list(id = "dyestuff2_singular", data = "Dyestuff2", formula = "Yield ~ 1 + (1 | Batch)")
)
frames <- list(sleepstudy = sleep, Dyestuff = dye, Dyestuff2 = dye2, Orthodont = orth, Penicillin = pen)

johnson <- function(m) {
  # sum over terms of trace(Sigma_k X_k' X_k) / n, X_k the term's own model matrix (lme4's reTrms$Ztlist
  # holds Z_k = the rows of X_k spread over levels; mean(diag(Z_k Sigma_k Z_k')) is the same number)
  vc <- VarCorr(m); fr <- model.frame(m); n <- nobs(m)
  bars <- lme4::findbars(lme4::expandDoubleVerts(formula(m)))
  total <- 0
  for (k in seq_along(bars)) {
    Xk <- model.matrix(as.formula(paste("~", deparse(bars[[k]][[2]]))), fr)
    Sk <- vc[[k]]
    stopifnot(identical(colnames(Xk), rownames(Sk)))
    total <- total + sum(diag(Sk %*% crossprod(Xk))) / n
  }
  total
}
num <- function(x) if (is.null(x) || length(x) == 0 || all(is.na(x))) NA else unname(as.numeric(x))

out <- lapply(cases, function(cs) {
  d <- frames[[cs$data]]
  reml <- if (is.null(cs$reml)) TRUE else cs$reml
  m <- if (is.null(cs$weights)) lmer(as.formula(cs$formula), d, REML = reml) else
    lmer(as.formula(cs$formula), d, REML = reml, weights = d[[cs$weights]])
  msg <- character(0)
  keep <- function(expr) withCallingHandlers(expr,
    warning = function(w) { msg <<- c(msg, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(e) { msg <<- c(msg, conditionMessage(e)); invokeRestart("muffleMessage") })
  printed <- capture.output({
    r2 <- keep(r2_nakagawa(m)); ic <- keep(icc(m)); gv <- keep(get_variance(m))
  })
  c(cs, list(reml = reml, theta = I(unname(getME(m, "theta"))), sigma = sigma(m), fixef = as.list(fixef(m)),
       singular = isSingular(m),
       r2_marginal = num(r2$R2_marginal), r2_conditional = num(r2$R2_conditional),
       icc_adjusted = num(if (is.list(ic)) ic$ICC_adjusted else NA),
       icc_unadjusted = num(if (is.list(ic)) ic$ICC_unadjusted else NA),
       var_fixed = num(gv$var.fixed), var_random = num(gv$var.random), var_residual = num(gv$var.residual),
       johnson_var_random = johnson(m), printed = printed, messages = msg))
})
versions <- lapply(c("lme4", "performance", "insight"), function(p) as.character(packageVersion(p)))
names(versions) <- c("lme4", "performance", "insight")
writeLines(toJSON(list(versions = c(list(R = R.version.string), versions), cases = out),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), "r2_reference.json")
