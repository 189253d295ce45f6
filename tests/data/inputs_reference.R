# lme4 / lmerTest reference numbers for model inputs (issue 19): prior weights, offsets, contrasts,
# update().  Run from tests/data:
#   Rscript inputs_reference.R        (writes inputs_reference.json)
# R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, jsonlite 1.8.4.  The data are the CSVs shipped
# in lmmcompare/datasets/data, factor levels in the order of schema.json (as the package loads them;
# cake's temperature is therefore an unordered factor here, unlike lme4::cake).
# Every weight and offset is a deterministic function of existing columns: its R expression and a
# description are stored with the fit (and its values, in row order, to check a Python port).
suppressMessages({library(lme4); library(lmerTest, warn.conflicts = FALSE); library(jsonlite)})
source("shipped_data.R")   # load_ds(name): a shipped data set with the package's factor levels
sleep <- load_ds("sleepstudy"); dye <- load_ds("Dyestuff"); dye2 <- load_ds("Dyestuff2")
orth <- load_ds("Orthodont"); cake <- load_ds("cake"); pen <- load_ds("Penicillin")

# ---- inputs: weights and offsets as columns, each with its expression and description ----
inputs <- list()
add_input <- function(key, data_name, column, expr, description) {
  d <- get(data_name, envir = globalenv())
  d[[column]] <- eval(parse(text = expr), d)
  assign(data_name, d, envir = globalenv())
  inputs[[key]] <<- list(column = column, r = expr, description = description, values = I(d[[column]]))
}
add_input("dye_w", "dye", "w", "1 + as.integer(Batch) %% 2",
          "1 + (1-based level index of Batch) mod 2: batches A, C, E weigh 2; B, D, F weigh 1")
add_input("dye2_w", "dye2", "w", "1 + as.integer(Batch) %% 2",
          "1 + (1-based level index of Batch) mod 2: batches A, C, E weigh 2; B, D, F weigh 1")
add_input("sleep_w", "sleep", "w", "1 + (Days %% 3)", "1 + Days mod 3: weights 1, 2, 3 within each subject")
add_input("sleep_w4", "sleep", "w4", "rep(4, length(Days))", "4 on every row")
add_input("sleep_w0", "sleep", "w0", "Days %% 3",
          "Days mod 3: 0 on Days 0, 3, 6, 9 (72 rows), else 1 or 2")
add_input("sleep_off", "sleep", "off", "2 * Days", "2 * Days")
add_input("sleep_half", "sleep", "half", "Days", "Days (given once in the formula and once as offset=)")
add_input("orth_logage", "orth", "logage", "log(age)", "natural log of age (ages 8 to 14)")

# ---- one fit: lme4's numbers, lmerTest's Satterthwaite (and Kenward-Roger where unweighted) ----
lmer_args <- function(cs, data) {
  a <- list(formula = as.formula(cs$formula), data = data, REML = cs$reml)
  if (!is.null(cs$weights)) a$weights <- as.name(inputs[[cs$weights]]$column)
  if (!is.null(cs$offset)) a$offset <- as.name(inputs[[cs$offset]]$column)
  if (!is.null(cs$contrasts)) a$contrasts <- cs$contrasts
  a
}
coef_table <- function(m, ddf) {
  r <- conds(summary(m, ddf = ddf)$coefficients)
  cf <- r$value
  list(se = I(unname(cf[, "Std. Error"])), df = I(unname(cf[, "df"])), t = I(unname(cf[, "t value"])),
       p = I(unname(cf[, "Pr(>|t|)"])), messages = I(r$messages))
}
varcorr_cols <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), vcov = I(vc$vcov), sdcor = I(vc$sdcor))
}
fit_numbers <- function(m, devfun, cs, fit_messages) {
  ll <- logLik(m)
  out <- list(nobs = nobs(m), ngrps = as.list(ngrps(m)), criterion = devfun(getME(m, "theta")),
              theta = I(unname(getME(m, "theta"))), fixef_names = I(names(fixef(m))),
              fixef = I(unname(fixef(m))), se = I(unname(sqrt(diag(as.matrix(vcov(m)))))),
              sigma = sigma(m), logLik = as.numeric(ll), logLik_df = attr(ll, "df"),
              varcorr = varcorr_cols(m), fit_messages = I(fit_messages))
  mt <- as_lmerModLmerTest(m)
  out$satterthwaite <- coef_table(mt, "Satterthwaite")
  # pbkrtest ignores prior weights, so no Kenward-Roger numbers for weighted fits
  if (is.null(cs$weights)) {
    kr <- tryCatch(coef_table(mt, "Kenward-Roger"), error = function(e) list(error = conditionMessage(e)))
    out$kenward_roger <- kr
  }
  out
}
data_of <- function(cs) switch(cs$data, sleepstudy = sleep, Dyestuff = dye, Dyestuff2 = dye2,
                               Orthodont = orth, cake = cake, Penicillin = pen)
describe <- function(cs) list(data = cs$data, formula = cs$formula, reml = cs$reml,
  weights = if (is.null(cs$weights)) NULL else inputs[[cs$weights]][c("column", "r", "description")],
  offset = if (is.null(cs$offset)) NULL else inputs[[cs$offset]][c("column", "r", "description")],
  contrasts = if (is.null(cs$contrasts)) NULL else cs$contrasts_text, subset = cs$subset)
run_case <- function(cs) {
  d <- data_of(cs)
  if (!is.null(cs$subset)) d <- d[eval(parse(text = cs$subset), d), ]
  a <- lmer_args(cs, d)
  r <- conds(do.call(lme4::lmer, a))
  devfun <- do.call(lme4::lmer, c(a, devFunOnly = TRUE))
  c(describe(cs), fit_numbers(r$value, devfun, cs, r$messages))
}
case <- function(data, formula, reml = TRUE, weights = NULL, offset = NULL, contrasts = NULL,
                 contrasts_text = NULL, subset = NULL)
  list(data = data, formula = formula, reml = reml, weights = weights, offset = offset,
       contrasts = contrasts, contrasts_text = contrasts_text, subset = subset)
ss_f <- "Reaction ~ Days + (Days | Subject)"
cake_f <- "angle ~ recipe * temp + (1 | recipe:replicate)"
cases <- list(
  dyestuff_w_reml = case("Dyestuff", "Yield ~ 1 + (1 | Batch)", TRUE, "dye_w"),
  dyestuff_w_ml = case("Dyestuff", "Yield ~ 1 + (1 | Batch)", FALSE, "dye_w"),
  sleepstudy_w_reml = case("sleepstudy", ss_f, TRUE, "sleep_w"),
  sleepstudy_w_ml = case("sleepstudy", ss_f, FALSE, "sleep_w"),
  sleepstudy_reml = case("sleepstudy", ss_f, TRUE),
  sleepstudy_w4_reml = case("sleepstudy", ss_f, TRUE, "sleep_w4"),
  sleepstudy_ml = case("sleepstudy", ss_f, FALSE),
  sleepstudy_w4_ml = case("sleepstudy", ss_f, FALSE, "sleep_w4"),
  sleepstudy_w0_positive_reml = case("sleepstudy", ss_f, TRUE, "sleep_w0", subset = "w0 > 0"),
  sleepstudy_offset_expr_reml = case("sleepstudy", "Reaction ~ Days + offset(2 * Days) + (Days | Subject)"),
  sleepstudy_offset_arg_reml = case("sleepstudy", ss_f, TRUE, offset = "sleep_off"),
  sleepstudy_offset_both_reml = case("sleepstudy", "Reaction ~ Days + offset(Days) + (Days | Subject)",
                                     TRUE, offset = "sleep_half"),
  orthodont_offset_log_reml = case("Orthodont", "distance ~ age + offset(log(age)) + (1 | Subject)"),
  orthodont_reml = case("Orthodont", "distance ~ age + (1 | Subject)"),
  cake_default_reml = case("cake", cake_f),
  cake_sum_reml = case("cake", cake_f, contrasts = list(recipe = "contr.sum"),
                       contrasts_text = list(recipe = "contr.sum")),
  cake_summatrix_reml = case("cake", cake_f, contrasts = list(recipe = contr.sum(3)),
                             contrasts_text = list(recipe = "contr.sum(3) given as a 3 x 2 matrix")),
  cake_poly_reml = case("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)",
                        contrasts = list(temperature = "contr.poly"),
                        contrasts_text = list(temperature = "contr.poly")),
  penicillin_helmert_reml = case("Penicillin", "diameter ~ sample + (1 | plate)",
                                 contrasts = list(sample = "contr.helmert"),
                                 contrasts_text = list(sample = "contr.helmert")),
  dyestuff2_w_reml = case("Dyestuff2", "Yield ~ 1 + (1 | Batch)", TRUE, "dye2_w"),
  dyestuff2_w_ml = case("Dyestuff2", "Yield ~ 1 + (1 | Batch)", FALSE, "dye2_w"))
fits <- lapply(cases, run_case)
# pbkrtest ignores prior weights: lmerTest's Kenward-Roger se on a weighted fit is not sqrt(diag(vcov))
kr_weighted <- coef_table(as_lmerModLmerTest(do.call(lme4::lmer, lmer_args(cases$sleepstudy_w_reml, sleep))),
                          "Kenward-Roger")

# ---- zero weights on the full data: lme4 keeps the rows; log(0) makes the criterion Inf ----
zero_call <- lmer_args(cases$sleepstudy_w0_positive_reml, sleep)
zero <- conds(do.call(lme4::lmer, zero_call))
zero_devfun <- do.call(lme4::lmer, c(zero_call, devFunOnly = TRUE))
zm <- zero$value
zero_weights <- list(
  data = "sleepstudy", formula = ss_f, reml = TRUE, weights = inputs$sleep_w0[c("column", "r", "description")],
  n_zero = sum(sleep$w0 == 0), error = NULL, nobs = nobs(zm),
  criterion = format(zero_devfun(getME(zm, "theta"))),
  criterion_at_positive_subset_theta = format(zero_devfun(fits$sleepstudy_w0_positive_reml$theta)),
  theta = I(unname(getME(zm, "theta"))), fixef = I(unname(fixef(zm))), sigma = sigma(zm),
  optimizer_messages = I(c(zm@optinfo$message, unlist(zm@optinfo$conv$lme4$messages))),
  fit_messages = I(zero$messages),
  note = paste("lme4 fits without an error or R warning: sum(log(w)) = -Inf puts Inf in the criterion at",
               "every theta, so the optimizer stops at its start (theta = 1, 0, 1) and theta, sigma are not",
               "estimates (fixef equal the subset fit's only because sleepstudy is balanced, so the GLS",
               "estimate does not depend on theta). The fit on the rows with w > 0 is",
               "fits$sleepstudy_w0_positive_reml."))

# ---- facts checked here, recorded as booleans ----
same <- function(a, b) isTRUE(all.equal(a, b, tolerance = 1e-6))
cake_ord <- within(cake, temperature <- factor(temperature, ordered = TRUE))
m_ord <- lme4::lmer(angle ~ recipe * temperature + (1 | recipe:replicate), cake_ord)
facts <- list(
  constant_weights_keep_reml_criterion = same(fits$sleepstudy_w4_reml$criterion, fits$sleepstudy_reml$criterion),
  constant_weights_keep_ml_deviance = same(fits$sleepstudy_w4_ml$criterion, fits$sleepstudy_ml$criterion),
  constant_weights_sigma_ratio = fits$sleepstudy_w4_reml$sigma / fits$sleepstudy_reml$sigma,
  constant_weights_theta_ratio = I(fits$sleepstudy_w4_reml$theta / fits$sleepstudy_reml$theta),
  offset_expr_equals_offset_arg = same(fits$sleepstudy_offset_expr_reml[c("criterion", "theta", "fixef")],
                                       fits$sleepstudy_offset_arg_reml[c("criterion", "theta", "fixef")]),
  offset_formula_and_arg_are_summed = same(fits$sleepstudy_offset_both_reml[c("criterion", "theta", "fixef")],
                                           fits$sleepstudy_offset_arg_reml[c("criterion", "theta", "fixef")]),
  sum_matrix_equals_sum_name = same(fits$cake_summatrix_reml[c("criterion", "fixef", "fixef_names", "se")],
                                    fits$cake_sum_reml[c("criterion", "fixef", "fixef_names", "se")]),
  kenward_roger_on_weighted_fit = list(fit = "sleepstudy_w_reml", se_vcov = fits$sleepstudy_w_reml$se,
                                       se_kr = kr_weighted$se, df_kr = kr_weighted$df),
  poly_equals_ordered_factor_default = same(unname(fixef(m_ord)), as.vector(fits$cake_poly_reml$fixef)) &&
                                       same(names(fixef(m_ord)), as.vector(fits$cake_poly_reml$fixef_names)))

# ---- lmerTest type III anova tables for the sum-coded and default-coded cake fits ----
tab <- function(a) list(terms = I(rownames(a)), SumSq = I(a[["Sum Sq"]]), MeanSq = I(a[["Mean Sq"]]),
                        NumDF = I(a$NumDF), DenDF = I(a$DenDF), F = I(a[["F value"]]), p = I(a[["Pr(>F)"]]))
anova_type3 <- lapply(c(cake_sum_reml = "cake_sum_reml", cake_default_reml = "cake_default_reml"), function(id) {
  cs <- cases[[id]]
  m <- as_lmerModLmerTest(do.call(lme4::lmer, lmer_args(cs, cake)))
  list(formula = cs$formula, contrasts = cs$contrasts_text,
       satterthwaite = tab(anova(m, type = "III", ddf = "Satterthwaite")),
       kenward_roger = tab(anova(m, type = "III", ddf = "Kenward-Roger")))
})
facts$type3_same_for_sum_and_default_coding <- same(
  anova_type3$cake_sum_reml$satterthwaite[c("F", "NumDF", "DenDF", "p")],
  anova_type3$cake_default_reml$satterthwaite[c("F", "NumDF", "DenDF", "p")])

# ---- update(): a user's call on a fit, as lme4 users write it ----
sleepstudy <- sleep
base <- lme4::lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy)
upd <- list(minus_days = conds(update(base, . ~ . - Days)), ml = conds(update(base, REML = FALSE)))
update_fits <- mapply(function(u, code) {
  m <- u$value
  cs <- case("sleepstudy", paste(deparse(formula(m)), collapse = " "), isREML(m))
  devfun <- update(m, devFunOnly = TRUE)
  c(list(call = code), describe(cs), fit_numbers(m, devfun, cs, u$messages))
}, upd, c("update(fit, . ~ . - Days)", "update(fit, REML = FALSE)"), SIMPLIFY = FALSE)

# ---- theta = 0 (Dyestuff2, weighted): the weighted least-squares fit lm(Yield ~ 1, weights = w) ----
wls_fit <- lm(Yield ~ 1, data = dye2, weights = w)
wls <- list(data = "Dyestuff2", formula = "Yield ~ 1", weights = inputs$dye2_w[c("column", "r", "description")],
            coef_names = I(names(coef(wls_fit))), coef = I(unname(coef(wls_fit))),
            se = I(unname(sqrt(diag(vcov(wls_fit))))), sigma = sigma(wls_fit), df_residual = df.residual(wls_fit),
            sigma_ml = sqrt(sum(dye2$w * residuals(wls_fit)^2) / nrow(dye2)),
            logLik_ml = as.numeric(logLik(wls_fit)), logLik_reml = as.numeric(logLik(wls_fit, REML = TRUE)),
            theta_reml = fits$dyestuff2_w_reml$theta, theta_ml = fits$dyestuff2_w_ml$theta)

versions <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                 lmerTest = format(packageVersion("lmerTest")), pbkrtest = format(packageVersion("pbkrtest")))
writeLines(toJSON(list(versions = versions, inputs = inputs, fits = fits, zero_weights = zero_weights,
                       facts = facts, anova_type3 = anova_type3, update = update_fits, wls = wls),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null", null = "null"),
           "inputs_reference.json")
