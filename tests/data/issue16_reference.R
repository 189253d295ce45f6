# lme4 1.1-31 numbers for tests/test_user_input.py (issue 16).  Run from tests/data:
#   Rscript issue16_reference.R   (writes issue16_reference.json)
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv("issue16_data.csv", stringsAsFactors = TRUE)
small <- read.csv("issue16_small.csv", stringsAsFactors = TRUE)
fit_info <- function(formula, data) {
  f <- lmer(as.formula(formula), data, REML = TRUE)
  # the criterion from the deviance function at the optimum: REMLcrit(f) of a model without fixed
  # effects reads an uninitialised ldRX2 in lme4 1.1-31 (it printed 4.8e+233 once, 206.9 another time)
  devfun <- lmer(as.formula(formula), data, REML = TRUE, devFunOnly = TRUE)
  list(formula = formula, reml = devfun(getME(f, "theta")), theta = unname(getME(f, "theta")),
       fixef_names = names(fixef(f)), fixef = unname(fixef(f)), sigma = sigma(f))
}
fits <- lapply(c("y ~ poly(x, 2) + (1 | g)", "y ~ scale(x) + (1 | g)",
                 "y ~ C(f, contr.sum) + (1 | g)", "y ~ C(f, contr.helmert) * x + (1 | g)",
                 "y ~ 0 + (x | g)"), fit_info, data = d)
# each term has 6 levels (q = 12 = n in all): lme4 checks the terms one by one and fits it
fits[[length(fits) + 1]] <- fit_info("y ~ 1 + (1 | a) + (1 | b)", small)
# one term with l_i p_i = 12 = n: refused, naming the term
refused <- tryCatch(lmer(y ~ 1 + (x | a), small), error = function(e) conditionMessage(e))
writeLines(toJSON(list(fits = fits, refused = list(formula = "y ~ 1 + (x | a)", message = refused)),
                  digits = NA, pretty = TRUE), "issue16_reference.json")
