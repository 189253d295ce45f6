# R reference numbers for derived quantities (issue 20): emmeans' marginal means, pairwise comparisons
# and contrasts on lmer fits (Kenward-Roger, Satterthwaite and asymptotic df), and performance's
# r2_nakagawa() / icc() with the variance components insight::get_variance() feeds them.
# Run from tests/data:
#   Rscript derived_reference.R        (writes derived_reference.json)
# R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, emmeans 1.8.4-1, mvtnorm 1.1-3,
# performance 0.10.2, insight 0.19.0, jsonlite 1.8.4.  The data are the CSVs shipped in
# lmmcompare/datasets/data, factor levels in the order of schema.json (as the package loads them;
# cake's temperature is therefore an unordered factor here, unlike lme4::cake).
# JSON conventions: every table is an object of columns named as emmeans names them (a column per
# factor of the grid, level labels as strings); Inf (asymptotic df) is written as the string "Inf"
# (Python's float() reads it); matrices are arrays of rows.  "call" is the R text that was evaluated
# (fit / em are the objects named in the entry).  mvt adjustments are Monte-Carlo (mvtnorm's
# GenzBretz): set.seed(1) runs immediately before every summary() and confint(), and each mvt table
# records how far a second seed moves its p-values / limits.
suppressMessages({library(lme4); library(lmerTest, warn.conflicts = FALSE); library(jsonlite)
                  library(emmeans); library(performance)})
source("shipped_data.R")   # load_ds(name): a shipped data set with the package's factor levels
sleep <- load_ds("sleepstudy"); dye <- load_ds("Dyestuff"); orth <- load_ds("Orthodont")
cake <- load_ds("cake"); pen <- load_ds("Penicillin")
stopifnot(!is.ordered(cake$temperature))

run_text <- function(text, env) conds(eval(parse(text = text), env))
arr <- function(x) I(if (is.null(x)) character(0) else x)    # a JSON array even when empty or length 1
mat_rows <- function(m) { m <- as.matrix(m); lapply(seq_len(nrow(m)), function(i) I(unname(m[i, ]))) }

# ---- the fits (REML, lme4's defaults) ----
data_of <- function(name) switch(name, sleepstudy = sleep, Dyestuff = dye, Orthodont = orth,
                                 cake = cake, Penicillin = pen)
fit_model <- function(data, formula) {
  r <- conds(lme4::lmer(as.formula(formula), data = data_of(data), REML = TRUE))
  m <- r$value
  list(fit = m, info = list(data = data, formula = formula, reml = TRUE, nobs = nobs(m),
    reml_criterion = unname(deviance(m, REML = TRUE)), theta = I(unname(getME(m, "theta"))),
    fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))), sigma = sigma(m),
    fit_messages = I(r$messages)))
}
em_models <- list(
  cake = fit_model("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  orthodont = fit_model("Orthodont", "distance ~ age * Sex + (age | Subject)"),
  penicillin = fit_model("Penicillin", "diameter ~ sample + (1 | plate)"))

# ---- emmeans grids ----
df_methods <- c(kenward_roger = "kenward-roger", satterthwaite = "satterthwaite", asymptotic = "asymptotic")
grid_specs <- list(
  cake_recipe = list(model = "cake", spec = "~ recipe"),
  cake_temperature = list(model = "cake", spec = "~ temperature"),
  cake_recipe_temperature = list(model = "cake", spec = "~ recipe * temperature"),
  cake_recipe_by_temperature = list(model = "cake", spec = "~ recipe | temperature"),
  orthodont_sex = list(model = "orthodont", spec = "~ Sex"),
  orthodont_sex_age14 = list(model = "orthodont", spec = "~ Sex", at = "list(age = 14)"),
  penicillin_sample = list(model = "penicillin", spec = "~ sample"))
em_call <- function(g, method) paste0("emmeans(fit, ", g$spec, if (!is.null(g$at)) paste0(", at = ", g$at),
                                      ", lmer.df = \"", method, "\")")
summary_record <- function(call, env) {          # one summary()/confint() table with its annotations
  set.seed(1)
  r <- run_text(call, env)
  s <- r$value
  cols <- lapply(names(s), function(n) { x <- s[[n]]; I(if (is.factor(x)) as.character(x) else x) })
  names(cols) <- names(s)
  list(call = call, columns = I(names(s)), table = cols, pri_vars = arr(attr(s, "pri.vars")),
       by_vars = arr(attr(s, "by.vars")), annotations = arr(attr(s, "mesg")), messages = arr(r$messages),
       printed = arr(capture.output(print(s))))
}
make_em <- function(g, method) {
  env <- new.env(); env$fit <- em_models[[g$model]]$fit
  r <- run_text(em_call(g, method), env)
  env$em <- r$value
  list(env = env, call = em_call(g, method), messages = r$messages)
}
grid_record <- function(g) {
  e <- make_em(g, "kenward-roger")
  rg <- emmeans::ref_grid(e$env$fit)
  if (!is.null(g$at)) rg <- emmeans::ref_grid(e$env$fit, at = eval(parse(text = g$at)))
  out <- list(model = g$model, spec = g$spec, at = g$at, ref_grid_levels = rg@levels,
              linfct_columns = I(colnames(e$env$em@linfct)), linfct = mat_rows(e$env$em@linfct))
  for (k in names(df_methods)) {
    e <- make_em(g, df_methods[[k]])
    out[[k]] <- c(list(emmeans_call = e$call, emmeans_messages = I(e$messages)),
                  summary_record("summary(em)", e$env))
  }
  out
}
grids <- lapply(grid_specs, grid_record)

# ---- pairs() under each adjustment, with confint() for the intervals ----
adjusts <- c("tukey", "holm", "bonferroni", "sidak", "mvt", "none")
mvt_spread <- function(call, env, cols) {        # largest change of cols when seed 2 replaces seed 1
  a <- { set.seed(1); eval(parse(text = call), env) }
  b <- { set.seed(2); eval(parse(text = call), env) }
  cols <- intersect(names(a), cols)
  stopifnot(length(cols) > 0)
  suppressMessages(max(sapply(cols, function(n) max(abs(a[[n]] - b[[n]])))))
}
contrast_record <- function(g, method, contrast_text) {
  e <- make_em(grid_specs[[g]], method)
  e$env$ct <- suppressMessages(eval(parse(text = contrast_text), e$env))
  tests <- summary_record(paste0("summary(", contrast_text, ")"), e$env)
  ci <- summary_record(paste0("confint(", contrast_text, ")"), e$env)
  rec <- c(list(grid = g, emmeans_call = e$call, contrast_call = contrast_text,
                adjust_used = attr(summary(e$env$ct), "adjust"), tests = tests, intervals = ci))
  if (identical(rec$adjust_used, "mvt")) rec$mvt_seed2_max_abs_change <- list(
    p.value = mvt_spread(paste0("summary(", contrast_text, ")"), e$env, "p.value"),
    limits = mvt_spread(paste0("confint(", contrast_text, ")"), e$env, c("lower.CL", "upper.CL", "asymp.LCL", "asymp.UCL")))
  rec
}
pair_sets <- c("cake_recipe", "penicillin_sample")
pairs_ref <- lapply(setNames(pair_sets, pair_sets), function(g) {
  lapply(df_methods, function(method) {
    lapply(setNames(adjusts, adjusts), function(a)
      contrast_record(g, method, paste0("pairs(em, adjust = \"", a, "\")")))
  })
})
# by-groups: one family per temperature (the default tukey, kept as a family of 3 in each group)
pairs_ref$cake_recipe_by_temperature <- lapply(df_methods[1:2], function(method)
  list(tukey = contrast_record("cake_recipe_by_temperature", method, "pairs(em)")))

# ---- named and custom contrasts, with their coefficient matrices ----
coef_record <- function(g, contrast_text) {
  e <- make_em(grid_specs[[g]], "kenward-roger")
  cf <- coef(suppressMessages(eval(parse(text = contrast_text), e$env)))
  stopifnot(sum(!startsWith(names(cf), "c.")) == 1)   # one-factor grids: the level column, then c.1, c.2, ...
  list(levels = I(as.character(cf[[1]])), coefficients = mat_rows(t(as.matrix(cf[, startsWith(names(cf), "c.")]))))
}
contrast_specs <- list(
  penicillin_trt_vs_ctrl = list("penicillin_sample", "contrast(em, \"trt.vs.ctrl\")", "dunnettx"),
  penicillin_consec = list("penicillin_sample", "contrast(em, \"consec\")", "mvt"),
  penicillin_poly = list("penicillin_sample", "contrast(em, \"poly\")", "none"),
  cake_temperature_trt_vs_ctrl = list("cake_temperature", "contrast(em, \"trt.vs.ctrl\")", "dunnettx"),
  cake_temperature_consec = list("cake_temperature", "contrast(em, \"consec\")", "mvt"),
  cake_temperature_poly = list("cake_temperature", "contrast(em, \"poly\")", "none"),
  cake_recipe_custom = list("cake_recipe", "contrast(em, list(AvsBC = c(1, -0.5, -0.5)))", "none"))
contrasts_ref <- lapply(contrast_specs, function(cs) {
  out <- c(list(grid = cs[[1]], call = cs[[2]], default_adjust = cs[[3]]), coef_record(cs[[1]], cs[[2]]))
  for (k in names(df_methods)[1:2]) out[[k]] <- contrast_record(cs[[1]], df_methods[[k]], cs[[2]])
  stopifnot(out$kenward_roger$adjust_used == cs[[3]])
  out
})

# ---- vcov(em): the covariance emmeans uses, against L V L' with lme4's vcov ----
vcov_ref <- lapply(df_methods, function(method) {
  e <- make_em(grid_specs$cake_recipe, method)
  L <- e$env$em@linfct
  V <- as.matrix(vcov(e$env$em))
  list(call = "vcov(em)", emmeans_call = e$call, vcov = mat_rows(V),
       max_abs_diff_from_L_vcovfit_Lt = max(abs(V - L %*% as.matrix(vcov(e$env$fit)) %*% t(L))))
})
kr_adj <- lapply(em_models, function(mm) max(abs(as.matrix(pbkrtest::vcovAdj(mm$fit)) - as.matrix(vcov(mm$fit)))))

gb <- formals(mvtnorm::GenzBretz)
emm_opts <- list(lmer.df = get_emm_option("lmer.df"), pbkrtest.limit = get_emm_option("pbkrtest.limit"),
                 lmerTest.limit = get_emm_option("lmerTest.limit"),
                 disable.pbkrtest = get_emm_option("disable.pbkrtest"),
                 disable.lmerTest = get_emm_option("disable.lmerTest"))
mvt <- list(seed = 1, seed_rule = "set.seed(1) immediately before each summary() and confint() call",
  algorithm = "mvtnorm::GenzBretz()", maxpts = gb$maxpts, abseps = gb$abseps, releps = gb$releps,
  p_value = "1 - mvtnorm::pmvt(lower = rep(-|t|, k), upper = rep(|t|, k), df = as.integer(dfx), corr = R) per test, R the correlation of the family's estimates",
  interval = "mvtnorm::qmvt(level, tail = \"both.tails\", df = as.integer(dfx), corr = R)$quantile",
  df_rule = "dfx = floor(max(1, df) + 0.25); Inf or df > 9999 becomes 0 (mvtnorm's normal case)",
  df_rule_source = I(deparse(emmeans:::.fix.df)))

# ---- performance: r2_nakagawa(), icc(), insight::get_variance() ----
perf_models <- list(
  sleepstudy_intercept = fit_model("sleepstudy", "Reaction ~ Days + (1 | Subject)"),
  dyestuff = fit_model("Dyestuff", "Yield ~ 1 + (1 | Batch)"),
  penicillin_crossed = fit_model("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  sleepstudy_slope = fit_model("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
  orthodont_slope = fit_model("Orthodont", "distance ~ age * Sex + (age | Subject)"))
perf_call <- function(text, fit) {
  env <- new.env(); env$fit <- fit
  printed <- capture.output(r <- run_text(text, env))
  list(call = text, value = r$value, messages = I(r$messages), stdout = I(printed))
}
named <- function(x) if (is.null(x)) NULL else as.list(x)
perf_ref <- lapply(perf_models, function(mm) {
  m <- mm$fit
  r2 <- perf_call("r2_nakagawa(fit)", m); ic <- perf_call("icc(fit)", m)
  gv <- perf_call("insight::get_variance(fit)", m); v <- gv$value
  vc <- VarCorr(m)
  X <- getME(m, "X")
  # Johnson (2014): sigma^2_l = tr(Sigma_l Z_l'Z_l) / n, Z_l the fixed-effects design columns named in
  # the term (mean over rows of z_i' Sigma_l z_i, so x-bar and mean(x^2) enter, correlations included)
  johnson <- sum(sapply(names(vc), function(g) { S <- vc[[g]]; Z <- X[, rownames(S), drop = FALSE]
    sum(diag(S %*% crossprod(Z))) / nrow(X) }))
  no_cov <- sum(sapply(names(vc), function(g) { S <- diag(diag(vc[[g]]), nrow(vc[[g]]))
    Z <- X[, rownames(vc[[g]]), drop = FALSE]; sum(diag(S %*% crossprod(Z))) / nrow(X) }))
  at_mean <- sum(sapply(names(vc), function(g) { S <- vc[[g]]; z <- colMeans(X[, rownames(S), drop = FALSE])
    drop(t(z) %*% S %*% z) }))
  list(info = mm$info,
       r2_nakagawa = list(call = r2$call, R2_marginal = unname(r2$value$R2_marginal),
                          R2_conditional = unname(r2$value$R2_conditional),
                          messages = r2$messages, stdout = r2$stdout),
       icc = list(call = ic$call, ICC_adjusted = ic$value$ICC_adjusted, ICC_conditional = ic$value$ICC_conditional,
                  ICC_unadjusted = ic$value$ICC_unadjusted, messages = ic$messages, stdout = ic$stdout),
       get_variance = list(call = gv$call, var.fixed = v$var.fixed, var.random = v$var.random,
                           var.residual = v$var.residual, var.distribution = v$var.distribution,
                           var.dispersion = v$var.dispersion, var.intercept = named(v$var.intercept),
                           var.slope = named(v$var.slope), cor.slope_intercept = named(v$cor.slope_intercept),
                           messages = gv$messages, stdout = gv$stdout),
       varcorr = lapply(vc, function(S) list(names = I(rownames(S)), cov = mat_rows(S))),
       by_hand = list(
         var_fixed = var(drop(X %*% fixef(m))), var_fixed_rule = "var(X %*% fixef) with denominator n - 1",
         var_random_johnson = johnson, var_random_johnson_without_covariances = no_cov,
         var_random_at_covariate_means = at_mean,
         var_residual = sigma(m)^2,
         r2_marginal = v$var.fixed / (v$var.fixed + v$var.random + v$var.residual),
         r2_conditional = (v$var.fixed + v$var.random) / (v$var.fixed + v$var.random + v$var.residual),
         icc_adjusted = v$var.random / (v$var.random + v$var.residual),
         icc_unadjusted = v$var.random / (v$var.fixed + v$var.random + v$var.residual)))
})

# ---- facts checked here ----
same <- function(a, b) isTRUE(all.equal(a, b, tolerance = 1e-10))
facts <- list(
  kr_vcovAdj_minus_vcov_max_abs = kr_adj,
  holm_intervals_are_bonferroni = same(pairs_ref$cake_recipe$kenward_roger$holm$intervals$table,
                                       pairs_ref$cake_recipe$kenward_roger$bonferroni$intervals$table),
  insight_var_random_is_johnson = lapply(perf_ref, function(p) same(p$get_variance$var.random,
                                                                    p$by_hand$var_random_johnson)),
  insight_var_random_uses_covariances = lapply(perf_ref[c("sleepstudy_slope", "orthodont_slope")], function(p)
    !same(p$get_variance$var.random, p$by_hand$var_random_johnson_without_covariances)),
  insight_var_fixed_is_var_of_Xb = lapply(perf_ref, function(p) same(p$get_variance$var.fixed, p$by_hand$var_fixed)),
  icc_conditional_equals_unadjusted = lapply(perf_ref, function(p) same(p$icc$ICC_conditional, p$icc$ICC_unadjusted)),
  numeric_looking_levels_get_factor_name_in_contrast_labels = all(startsWith(
    contrasts_ref$cake_temperature_trt_vs_ctrl$kenward_roger$tests$table$contrast, "temperature")))

versions <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                 lmerTest = format(packageVersion("lmerTest")), pbkrtest = format(packageVersion("pbkrtest")),
                 emmeans = format(packageVersion("emmeans")), mvtnorm = format(packageVersion("mvtnorm")),
                 performance = format(packageVersion("performance")), insight = format(packageVersion("insight")),
                 jsonlite = format(packageVersion("jsonlite")))
writeLines(toJSON(list(versions = versions, emmeans_options = emm_opts, mvt = mvt,
                       models = lapply(em_models, `[[`, "info"), grids = grids, pairs = pairs_ref,
                       contrasts = contrasts_ref, vcov = list(grid = "cake_recipe", by_df = vcov_ref),
                       performance = perf_ref, facts = facts),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "string", null = "null"),
           "derived_reference.json")
