# glmmTMB / nlme / lme4 reference numbers for structured random-effect covariances and a residual sd
# per factor level (issue 22).  Run from tests/data:
#   Rscript structures_reference.R      (writes structures_reference.json and the simulated data set the
#                                        package ships, ../../lmmcompare/datasets/data/RepeatedMeasures.csv)
# R 4.2.2, glmmTMB 1.1.5, nlme 3.1-162, lme4 1.1-31, jsonlite 1.8.4; about half a minute.
#
# Our syntax -> the peers':
#   us(x | g)                 glmmTMB us(x | g); nlme pdSymm(~ x); lme4 (x | g)
#   diag(x | g)               glmmTMB diag(x | g); nlme pdDiag(~ x); lme4 (x || g) (numeric columns)
#   diag(0 + f | g, hom=True) glmmTMB diag with its log-sds tied by `map`; nlme pdIdent(~ 0 + f);
#                             lme4 (1 | g:f)
#   cs(x | g)                 glmmTMB cs(x | g) (one sd per column, one common correlation)
#   cs(0 + f | g, hom=True)   glmmTMB cs with its log-sds tied by `map` (1.1.5 has no homcs);
#                             nlme pdCompSymm(~ 0 + f); lme4 (1 | g) + (1 | g:f): sd^2 = s_g^2 + s_gf^2,
#                             rho = s_g^2 / sd^2 (the same model when rho >= 0)
#   ar1(0 + f | g)            glmmTMB ar1(0 + f | g): one sd, corr rho^|i-j| over the levels of f in order
#   sigma_by = "f"            glmmTMB dispformula = ~ f; nlme weights = varIdent(form = ~ 1 | f)
# Every peer's estimates are also put through a dense brute-force likelihood (`brute_force`):
#   V = sum_t (Z_t Sigma_t Z_t') * [g_r == g_s] + diag(sigma_row^2),
#   -2 l_ML   = n log(2 pi) + log|V| + r' V^-1 r,
#   -2 l_REML = (n - p) log(2 pi) + log|V| + log|X' V^-1 X| + r' V^-1 r   (lme4's REMLcrit),
#   r = y - X beta_GLS, se = sqrt(diag((X' V^-1 X)^-1)),
# so each stored criterion is checked against the stored sds, correlations and residual sds.
suppressMessages({library(lme4); library(glmmTMB); library(nlme); library(jsonlite)})
source("shipped_data.R")   # load_ds(name): a shipped data set with the package's factor levels
sleep <- load_ds("sleepstudy"); orth <- load_ds("Orthodont")

# ---- simulated repeated measures: 60 subjects x 6 occasions x 2 replicate rows = 720 rows ----
RNGkind("Mersenne-Twister", "Inversion", "Rejection"); set.seed(20221)
n_subj <- 60; n_occ <- 6; n_rep <- 2
sim_sd_occ <- seq(1.0, 2.0, length.out = n_occ)             # sd of the occasion effects, rising
sim_corr <- 0.4 + 0.5 * 0.6^abs(outer(1:n_occ, 1:n_occ, "-")); diag(sim_corr) <- 1  # cs + AR(1) mix
sim_sd_res <- c(A = 0.6, B = 0.9, C = 1.3)                  # residual sd by group
sim_beta <- c(10, 0.5)
b <- t(chol(diag(sim_sd_occ) %*% sim_corr %*% diag(sim_sd_occ))) %*% matrix(rnorm(n_occ * n_subj), n_occ)
grp_of_subj <- rep(c("A", "B", "C"), length.out = n_subj)
sim <- expand.grid(rep = 1:n_rep, occ = 1:n_occ, subj = 1:n_subj)
sim$time <- sim$occ - 1
sim$grp <- grp_of_subj[sim$subj]
sim$y <- round(sim_beta[1] + sim_beta[2] * sim$time + b[cbind(sim$occ, sim$subj)] +
               rnorm(nrow(sim), 0, sim_sd_res[sim$grp]), 4)
sim$subj <- sprintf("s%02d", sim$subj); sim$occ <- paste0("t", sim$occ)
rm_csv <- file.path(datadir, "RepeatedMeasures.csv")   # datadir: shipped_data.R
write.csv(sim[, c("subj", "occ", "rep", "time", "grp", "y")], rm_csv, row.names = FALSE)
rm_levels <- list(subj = sprintf("s%02d", 1:n_subj), occ = paste0("t", 1:n_occ), grp = c("A", "B", "C"))
read_rm <- function() {                   # the fits use the CSV as read back, as the tests will
  d <- read.csv(rm_csv, stringsAsFactors = FALSE)
  for (f in names(rm_levels)) d[[f]] <- factor(d[[f]], levels = rm_levels[[f]])
  d
}
rm <- read_rm()
occ_dummies <- model.matrix(~ 0 + occ, rm)     # columns occt1..occt6, for lme4's (0 + occt1 + ... || subj)
rm <- cbind(rm, as.data.frame(occ_dummies))
design <- list(
  file = "lmmcompare/datasets/data/RepeatedMeasures.csv", rows = nrow(rm), subjects = n_subj, occasions = n_occ,
  replicates_per_occasion = n_rep,
  columns = list(subj = "factor s01..s60", occ = "factor t1..t6 (in this order)",
                 rep = "replicate 1 or 2 within subject and occasion", time = "numeric 0..5 (occ t1..t6)",
                 grp = "factor A, B, C; per subject (s01 A, s02 B, s03 C, s04 A, ...)",
                 y = "response, rounded to 4 decimals"),
  rng = I(RNGkind()), seed = 20221,
  truth = list(beta = I(sim_beta), occasion_sd = I(sim_sd_occ), occasion_corr = sim_corr,
               occasion_corr_text = "0.4 + 0.5 * 0.6^|i - j| off the diagonal", residual_sd = as.list(sim_sd_res)),
  why = paste("Two replicate rows per subject and occasion. With one row per occasion diag(0 + occ | subj) is",
              "confounded with the residual (pdHess FALSE), cs(0 + occ | subj) nearly so (pdHess FALSE, sigma",
              "-> 0) and cs(0 + occ | subj, hom=True) exactly (a flat ridge that glmmTMB still calls pdHess TRUE);",
              "see facts$single_replicate_identifiability. The within-cell replicates identify sigma."))

# ---- our term layout, for the brute-force likelihood ----
term <- function(group, cols, structure) list(group = group, cols = cols, structure = structure)
z_of <- function(t, d) model.matrix(as.formula(paste("~", t$cols)), d)
brute_force <- function(cs, d, terms, sd_row, reml) {
  y <- d[[all.vars(as.formula(cs$fixed))[1]]]; X <- model.matrix(as.formula(cs$fixed), d)
  V <- diag(sd_row^2)
  for (i in seq_along(cs$terms)) {
    Z <- z_of(cs$terms[[i]], d); S <- terms[[i]]$cov[colnames(Z), colnames(Z), drop = FALSE]
    g <- d[[cs$terms[[i]]$group]]
    V <- V + (Z %*% S %*% t(Z)) * outer(g, g, "==")
  }
  U <- chol(V); Xs <- backsolve(U, X, transpose = TRUE); ys <- backsolve(U, y, transpose = TRUE)
  A <- crossprod(Xs); beta <- solve(A, crossprod(Xs, ys)); rs <- ys - Xs %*% beta
  n <- length(y); p <- ncol(X); q <- sum(rs^2); ldV <- 2 * sum(log(diag(U)))
  crit <- if (reml) (n - p) * log(2 * pi) + ldV + as.numeric(determinant(A)$modulus) + q
          else n * log(2 * pi) + ldV + q
  list(criterion = crit, fixef = as.list(setNames(drop(beta), colnames(X))),
       se = as.list(setNames(sqrt(diag(solve(A))), colnames(X))))
}
term_out <- function(group, S, structure) {
  sd <- sqrt(diag(S)); R <- cov2cor(S)
  out <- list(group = group, structure = structure, columns = I(colnames(S)), sd = as.list(sd), corr = R, cov = S)
  if (ncol(S) > 1 && structure %in% c("cs", "cs_hom", "ar1")) out$common_corr <- R[1, 2]
  out
}
residual_row_sd <- function(cs, d, fit) {
  if (is.null(cs$sigma_by)) rep(fit$sigma, nrow(d)) else unlist(fit$sigma_by_level)[as.character(d[[cs$sigma_by]])]
}

# ---- one fit per peer, in one layout ----
fill_call <- function(call, reml) gsub("{METHOD}", if (reml) "\"REML\"" else "\"ML\"",
                                       gsub("{REML}", reml, call, fixed = TRUE), fixed = TRUE)
peer_tmb <- function(cs, call, d) {
  r <- conds(eval(parse(text = call))); m <- r$value
  vc <- VarCorr(m)$cond
  terms <- lapply(seq_along(cs$terms), function(i) term_out(cs$terms[[i]]$group, vc[[i]][, , drop = FALSE],
                                                            cs$terms[[i]]$structure))
  out <- list(criterion = -2 * as.numeric(logLik(m)), fixef = as.list(fixef(m)$cond),
              se = as.list(sqrt(diag(vcov(m)$cond))), terms = terms)
  if (is.null(cs$sigma_by)) out$sigma <- sigma(m) else {
    lv <- levels(d[[cs$sigma_by]]); Xd <- model.matrix(~ f, data.frame(f = factor(lv, levels = lv)))
    out$disp_coef <- as.list(fixef(m)$disp)      # log(sigma^2) per row, treatment contrasts
    out$sigma_by_level <- as.list(setNames(sqrt(exp(drop(Xd %*% fixef(m)$disp))), lv))
  }
  c(out, list(messages = I(r$messages), convergence = m$fit$convergence, optimizer_message = m$fit$message,
              pdHess = m$sdr$pdHess))
}
peer_nlme <- function(cs, call, d) {
  r <- conds(eval(parse(text = call))); m <- r$value
  S <- as.matrix(m$modelStruct$reStruct[[1]]) * m$sigma^2     # nlme scales Psi by the reference sigma
  out <- list(criterion = -2 * as.numeric(logLik(m)), fixef = as.list(fixef(m)),
              se = as.list(sqrt(diag(vcov(m)))), terms = list(term_out(cs$terms[[1]]$group, S, cs$terms[[1]]$structure)))
  if (is.null(cs$sigma_by)) out$sigma <- m$sigma else {
    vs <- m$modelStruct$varStruct
    ratio <- coef(vs, unconstrained = FALSE, allCoef = TRUE)
    lv <- levels(d[[cs$sigma_by]])
    out$varident <- list(reference = setdiff(names(ratio), names(coef(vs, unconstrained = FALSE))),
                         sigma = m$sigma, ratios = as.list(ratio))
    out$sigma_by_level <- as.list((m$sigma * ratio)[lv])
  }
  c(out, list(messages = I(r$messages), apVar_ok = !is.character(m$apVar),
              apVar_message = if (is.character(m$apVar)) m$apVar else NULL))
}
# lme4's VarCorr rows -> our term's covariance matrix (columns named as model.matrix names them)
lme4_direct <- function(vc, cols) {
  S <- matrix(0, length(cols), length(cols), dimnames = list(cols, cols))
  for (k in seq_len(nrow(vc))) if (vc$grp[k] != "Residual") {
    a <- vc$var1[k]; b <- if (is.na(vc$var2[k])) a else vc$var2[k]; S[a, b] <- S[b, a] <- vc$vcov[k] }
  S
}
lme4_hom_cs <- function(vc, cols) {   # (1 | g) + (1 | g:f): compound symmetry over the levels of f
  vg <- vc$vcov[vc$grp == "subj"]; vgf <- vc$vcov[vc$grp == "subj:occ"]
  S <- matrix(vg, length(cols), length(cols), dimnames = list(cols, cols)); diag(S) <- vg + vgf; S
}
lme4_hom_diag <- function(vc, cols)   # (1 | g:f): one variance, independent levels of f
  matrix(diag(vc$vcov[vc$grp == "subj:occ"], length(cols)), length(cols), dimnames = list(cols, cols))
peer_lme4 <- function(cs, call, d, convert) {
  r <- conds(eval(parse(text = call))); m <- r$value
  cols <- colnames(z_of(cs$terms[[1]], d)); vc <- as.data.frame(VarCorr(m))
  list(criterion = if (isREML(m)) REMLcrit(m) else deviance(m), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       terms = list(term_out(cs$terms[[1]]$group, convert(vc, cols), cs$terms[[1]]$structure)),
       sigma = sigma(m), varcorr = list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), vcov = I(vc$vcov)),
       messages = I(r$messages), optimizer_messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
       singular = isSingular(m))
}

# ---- agreement: largest absolute differences between peers, and with the brute force ----
flat <- function(p, what) switch(what,
  criterion = p$criterion, fixef = unlist(p$fixef), se = unlist(p$se),
  sd = unlist(lapply(p$terms, function(t) unlist(t$sd))), corr = unlist(lapply(p$terms, function(t) c(t$corr))),
  sigma = if (is.null(p$sigma_by_level)) p$sigma else unlist(p$sigma_by_level))
max_abs <- function(a, b) max(abs(a - b))
agreement <- function(peers) {
  nm <- names(peers); out <- list()
  for (i in seq_along(nm)) {
    bf <- peers[[i]]$brute_force
    out[[paste0(nm[i], "_vs_brute_force")]] <- list(criterion = max_abs(peers[[i]]$criterion, bf$criterion),
      fixef = max_abs(flat(peers[[i]], "fixef"), unlist(bf$fixef)), se = max_abs(flat(peers[[i]], "se"), unlist(bf$se)))
    for (j in seq_along(nm)) if (j > i)
      out[[paste0(nm[i], "_vs_", nm[j])]] <- sapply(c("criterion", "fixef", "se", "sd", "corr", "sigma"),
        function(w) max_abs(flat(peers[[i]], w), flat(peers[[j]], w)), simplify = FALSE)
  }
  out
}

run_case <- function(cs, reml) {
  d <- get(cs$data)
  peers <- list()
  for (p in names(cs$peers)) {
    call <- fill_call(if (is.list(cs$peers[[p]])) cs$peers[[p]]$call else cs$peers[[p]], reml)
    res <- switch(sub("_.*", "", p), glmmTMB = peer_tmb(cs, call, d), nlme = peer_nlme(cs, call, d),
                  lme4 = peer_lme4(cs, call, d, cs$peers[[p]]$convert))
    res$brute_force <- brute_force(cs, d, res$terms, residual_row_sd(cs, d, res), reml)
    peers[[p]] <- c(list(call = call), res)
  }
  list(data = cs$dataset, formula = cs$formula,
       sigma_by = cs$sigma_by, reml = reml, note = cs$note, peers = peers, agreement = agreement(peers))
}
case <- function(data, formula, fixed, terms, peers, sigma_by = NULL, note = NULL)
  list(data = data, dataset = c(sleep = "sleepstudy", orth = "Orthodont", rm = "RepeatedMeasures")[[data]],
       formula = formula, fixed = fixed, terms = terms, peers = peers, sigma_by = sigma_by, note = note)
ml <- "method = {METHOD}"; tr <- "REML = {REML}"
tmb <- function(f, data, extra = "") sprintf("glmmTMB(%s, data = %s, %s%s)", f, data, tr, extra)
nl <- function(fixed, random, data, extra = "")
  sprintf("lme(%s, random = %s, data = %s, %s%s)", fixed, random, data, ml, extra)
l4 <- function(f, data, convert = lme4_direct) list(call = sprintf("lmer(%s, data = %s, %s)", f, data, tr),
                                                    convert = convert)
occ_or <- paste0("occt", 1:n_occ, collapse = " + ")
map_cs_hom <- sprintf(", map = list(theta = factor(c(rep(1, %d), 2)))", n_occ)
map_diag_hom <- sprintf(", map = list(theta = factor(rep(1, %d)))", n_occ)
vi <- ", weights = varIdent(form = ~ 1 | %s)"
t_rm <- function(s, cols = "0 + occ") list(term("subj", cols, s))
cases <- list(
  sleepstudy_us = case("sleep", "Reaction ~ Days + us(Days | Subject)", "Reaction ~ Days",
    list(term("Subject", "Days", "us")),
    list(glmmTMB = tmb("Reaction ~ Days + us(Days | Subject)", "sleep"),
         nlme = nl("Reaction ~ Days", "~ Days | Subject", "sleep"), lme4 = l4("Reaction ~ Days + (Days | Subject)", "sleep"))),
  sleepstudy_diag = case("sleep", "Reaction ~ Days + diag(Days | Subject)", "Reaction ~ Days",
    list(term("Subject", "Days", "diag")),
    list(glmmTMB = tmb("Reaction ~ Days + diag(Days | Subject)", "sleep"),
         nlme = nl("Reaction ~ Days", "list(Subject = pdDiag(~ Days))", "sleep"),
         lme4 = l4("Reaction ~ Days + (Days || Subject)", "sleep"))),
  sleepstudy_cs = case("sleep", "Reaction ~ Days + cs(Days | Subject)", "Reaction ~ Days",
    list(term("Subject", "Days", "cs")),
    list(glmmTMB = tmb("Reaction ~ Days + cs(Days | Subject)", "sleep"),
         lme4 = l4("Reaction ~ Days + (Days | Subject)", "sleep")),
    note = "cs over 2 columns has 2 sds and 1 correlation, the same model as us: lme4's (Days | Subject) is its peer"),
  orthodont_diag = case("orth", "distance ~ age + diag(age | Subject)", "distance ~ age",
    list(term("Subject", "age", "diag")),
    list(glmmTMB = tmb("distance ~ age + diag(age | Subject)", "orth"),
         nlme = nl("distance ~ age", "list(Subject = pdDiag(~ age))", "orth"),
         lme4 = l4("distance ~ age + (age || Subject)", "orth"))),
  orthodont_sigma_by = case("orth", "distance ~ age + (1 | Subject)", "distance ~ age",
    list(term("Subject", "1", "us")),
    list(glmmTMB = tmb("distance ~ age + (1 | Subject)", "orth", ", dispformula = ~ Sex"),
         nlme = nl("distance ~ age", "~ 1 | Subject", "orth", sprintf(vi, "Sex"))), sigma_by = "Sex"),
  orthodont_us_sigma_by = case("orth", "distance ~ age + us(age | Subject)", "distance ~ age",
    list(term("Subject", "age", "us")),
    list(glmmTMB = tmb("distance ~ age + us(age | Subject)", "orth", ", dispformula = ~ Sex"),
         nlme = nl("distance ~ age", "~ age | Subject", "orth", sprintf(vi, "Sex"))), sigma_by = "Sex"),
  rm_cs = case("rm", "y ~ time + cs(0 + occ | subj)", "y ~ time", t_rm("cs"),
    list(glmmTMB = tmb("y ~ time + cs(0 + occ | subj)", "rm")),
    note = "heterogeneous cs: glmmTMB only (nlme's pdCompSymm is homogeneous, lme4 has none)"),
  rm_cs_hom = case("rm", "y ~ time + cs(0 + occ | subj, hom=True)", "y ~ time", t_rm("cs_hom"),
    list(glmmTMB_map = tmb("y ~ time + cs(0 + occ | subj)", "rm", map_cs_hom),
         nlme = nl("y ~ time", "list(subj = pdCompSymm(~ 0 + occ))", "rm"),
         lme4 = l4("y ~ time + (1 | subj) + (1 | subj:occ)", "rm", lme4_hom_cs)),
    note = "glmmTMB 1.1.5 has no homcs: its cs with the 6 log-sds tied by map"),
  rm_diag = case("rm", "y ~ time + diag(0 + occ | subj)", "y ~ time", t_rm("diag"),
    list(glmmTMB = tmb("y ~ time + diag(0 + occ | subj)", "rm"),
         nlme = nl("y ~ time", "list(subj = pdDiag(~ 0 + occ))", "rm"),
         lme4 = l4(sprintf("y ~ time + (0 + %s || subj)", occ_or), "rm")),
    note = "lme4's || does not split a factor, so its peer uses the indicator columns occt1..occt6 of occ"),
  rm_diag_hom = case("rm", "y ~ time + diag(0 + occ | subj, hom=True)", "y ~ time", t_rm("diag_hom"),
    list(glmmTMB_map = tmb("y ~ time + diag(0 + occ | subj)", "rm", map_diag_hom),
         nlme = nl("y ~ time", "list(subj = pdIdent(~ 0 + occ))", "rm"),
         lme4 = l4("y ~ time + (1 | subj:occ)", "rm", lme4_hom_diag))),
  rm_ar1 = case("rm", "y ~ time + ar1(0 + occ | subj)", "y ~ time", t_rm("ar1"),
    list(glmmTMB = tmb("y ~ time + ar1(0 + occ | subj)", "rm")),
    note = "glmmTMB only (nlme's corAR1 is a residual correlation, not a random-effect one)"),
  rm_us = case("rm", "y ~ time + us(1 + time | subj)", "y ~ time", t_rm("us", "1 + time"),
    list(glmmTMB = tmb("y ~ time + us(1 + time | subj)", "rm"),
         nlme = nl("y ~ time", "~ 1 + time | subj", "rm"), lme4 = l4("y ~ time + (1 + time | subj)", "rm"))),
  rm_diag_slope = case("rm", "y ~ time + diag(1 + time | subj)", "y ~ time", t_rm("diag", "1 + time"),
    list(glmmTMB = tmb("y ~ time + diag(1 + time | subj)", "rm"),
         nlme = nl("y ~ time", "list(subj = pdDiag(~ 1 + time))", "rm"),
         lme4 = l4("y ~ time + (1 + time || subj)", "rm"))),
  rm_sigma_by = case("rm", "y ~ time + (1 | subj)", "y ~ time", t_rm("us", "1"),
    list(glmmTMB = tmb("y ~ time + (1 | subj)", "rm", ", dispformula = ~ grp"),
         nlme = nl("y ~ time", "~ 1 | subj", "rm", sprintf(vi, "grp"))), sigma_by = "grp"),
  rm_cs_sigma_by = case("rm", "y ~ time + cs(0 + occ | subj)", "y ~ time", t_rm("cs"),
    list(glmmTMB = tmb("y ~ time + cs(0 + occ | subj)", "rm", ", dispformula = ~ grp")), sigma_by = "grp"),
  rm_cs_hom_sigma_by = case("rm", "y ~ time + cs(0 + occ | subj, hom=True)", "y ~ time", t_rm("cs_hom"),
    list(glmmTMB_map = tmb("y ~ time + cs(0 + occ | subj)", "rm", paste0(", dispformula = ~ grp", map_cs_hom)),
         nlme = nl("y ~ time", "list(subj = pdCompSymm(~ 0 + occ))", "rm", sprintf(vi, "grp"))), sigma_by = "grp"),
  rm_diag_sigma_by = case("rm", "y ~ time + diag(0 + occ | subj)", "y ~ time", t_rm("diag"),
    list(glmmTMB = tmb("y ~ time + diag(0 + occ | subj)", "rm", ", dispformula = ~ grp"),
         nlme = nl("y ~ time", "list(subj = pdDiag(~ 0 + occ))", "rm", sprintf(vi, "grp"))), sigma_by = "grp"),
  rm_ar1_sigma_by = case("rm", "y ~ time + ar1(0 + occ | subj)", "y ~ time", t_rm("ar1"),
    list(glmmTMB = tmb("y ~ time + ar1(0 + occ | subj)", "rm", ", dispformula = ~ grp")), sigma_by = "grp"))
fits <- list()
for (id in names(cases)) for (reml in c(TRUE, FALSE))
  fits[[paste0(id, if (reml) "_reml" else "_ml")]] <- run_case(cases[[id]], reml)

# ---- facts checked here ----
crit3 <- function(k) sapply(fits[[k]]$peers, `[[`, "criterion")
facts <- list(
  unstructured_sleepstudy_criterion = list(
    reml = as.list(crit3("sleepstudy_us_reml")), ml = as.list(crit3("sleepstudy_us_ml")),
    note = paste("-2 logLik of glmmTMB (REML = TRUE) and nlme (method = \"REML\") equals lme4's REMLcrit:",
                 "all three use (n - p) log(2 pi) + log|V| + log|X'V^-1 X| + r'V^-1 r (no log|X'X| term)")),
  cs_two_columns_equals_us = list(
    reml = sapply(c("criterion", "sd", "corr"), function(w)
      max_abs(flat(fits$sleepstudy_cs_reml$peers$glmmTMB, w), flat(fits$sleepstudy_us_reml$peers$glmmTMB, w)),
      simplify = FALSE),
    ml = sapply(c("criterion", "sd", "corr"), function(w)
      max_abs(flat(fits$sleepstudy_cs_ml$peers$glmmTMB, w), flat(fits$sleepstudy_us_ml$peers$glmmTMB, w)),
      simplify = FALSE)),
  glmmTMB_dispersion = paste("glmmTMB 1.1.5 gaussian: dispformula models log(sigma^2) with treatment contrasts",
                             "(first factor level is the baseline); sigma_by_level = sqrt(exp(X_disp beta_disp))"))

# nlme's varIdent reference level: data order, factor level order, or order after lme sorts by group?
vi_fit <- function(d) {
  m <- lme(y ~ time, random = ~ 1 | subj, data = d, weights = varIdent(form = ~ 1 | grp), method = "REML")
  vs <- m$modelStruct$varStruct; ratio <- coef(vs, unconstrained = FALSE, allCoef = TRUE)
  list(grp_levels = I(levels(d$grp)), subj_levels_first = levels(d$subj)[1],
       grp_of_first_subj_level = as.character(d$grp[d$subj == levels(d$subj)[1]][1]),
       grp_of_first_row = as.character(d$grp[1]),
       reference = setdiff(names(ratio), names(coef(vs, unconstrained = FALSE))),
       ratios = as.list(ratio), sigma_by_level = as.list((m$sigma * ratio)[sort(names(ratio))]),
       criterion = -2 * as.numeric(logLik(m)))
}
d0 <- read_rm()
s03_first <- d0[c(which(d0$subj == "s03"), which(d0$subj != "s03")), ]
grp_relevel <- within(d0, grp <- factor(grp, levels = c("C", "B", "A")))
subj_relevel <- within(d0, subj <- factor(subj, levels = c("s02", setdiff(rm_levels$subj, "s02"))))
both <- within(s03_first, subj <- factor(subj, levels = c("s02", setdiff(rm_levels$subj, "s02"))))
facts$varident_reference <- list(
  as_shipped = vi_fit(d0), first_row_grp_C = vi_fit(s03_first), grp_levels_C_B_A = vi_fit(grp_relevel),
  first_subj_level_grp_B = vi_fit(subj_relevel), first_row_C_first_subj_level_B = vi_fit(both))

# one row per subject and occasion: diag and hom cs are confounded with the residual
rep1 <- d0[d0$rep == 1, ]
single <- function(call) { r <- conds(eval(parse(text = call))); m <- r$value
  list(call = call, rows = nrow(rep1), pdHess = m$sdr$pdHess, criterion = -2 * as.numeric(logLik(m)),
       sd = as.list(attr(VarCorr(m)$cond$subj, "stddev")), sigma = sigma(m), messages = I(r$messages)) }
facts$single_replicate_identifiability <- list(
  diag = single("glmmTMB(y ~ time + diag(0 + occ | subj), data = rep1, REML = TRUE)"),
  cs_hom = single(paste0("glmmTMB(y ~ time + cs(0 + occ | subj), data = rep1, REML = TRUE", map_cs_hom, ")")),
  cs = single("glmmTMB(y ~ time + cs(0 + occ | subj), data = rep1, REML = TRUE)"),
  ar1 = single("glmmTMB(y ~ time + ar1(0 + occ | subj), data = rep1, REML = TRUE)"))
# hom cs with one row per occasion: the block covariance (d^2 (1 - rho) + sigma^2) I + d^2 rho J has 2 free
# numbers for 3 parameters. glmmTMB still says pdHess TRUE (its Hessian's smallest eigenvalue is ~1e-7 of
# the largest), so the ridge is shown directly: halving sigma and moving d, rho along it keeps the criterion.
m1 <- glmmTMB(y ~ time + cs(0 + occ | subj), data = rep1, REML = TRUE, map = list(theta = factor(c(rep(1, 6), 2))))
hom_cs_cov <- function(sd, rho) { S <- matrix(rho * sd^2, n_occ, n_occ, dimnames = list(colnames(occ_dummies),
  colnames(occ_dummies))); diag(S) <- sd^2; S }
d1 <- attr(VarCorr(m1)$cond$subj, "stddev")[[1]]; rho1 <- attr(VarCorr(m1)$cond$subj, "correlation")[1, 2]
s1 <- sigma(m1); s2 <- s1 / 2; d2 <- sqrt(d1^2 + s1^2 - s2^2); rho2 <- d1^2 * rho1 / d2^2
cs_rm <- list(fixed = "y ~ time", terms = t_rm("cs_hom"))
ridge_crit <- function(sd, rho, s) brute_force(cs_rm, rep1, list(list(cov = hom_cs_cov(sd, rho))),
                                                rep(s, nrow(rep1)), TRUE)$criterion
facts$single_replicate_identifiability$cs_hom$hessian_eigenvalues <-
  I(eigen(optimHess(m1$fit$par, m1$obj$fn, m1$obj$gr), only.values = TRUE)$values)
facts$single_replicate_identifiability$cs_hom$ridge <- list(
  at_fit = list(sd = d1, rho = rho1, sigma = s1, criterion = ridge_crit(d1, rho1, s1)),
  half_sigma = list(sd = d2, rho = rho2, sigma = s2, criterion = ridge_crit(d2, rho2, s2)))

# glmmTMB's fixed-effect se: the joint inverse Hessian over (beta, theta, disp), i.e. with the variance
# parameters' uncertainty; lme4 and nlme give (X' V^-1 X)^-1 at the estimates (brute_force$se), which is the
# beta-block alone. They coincide when beta_GLS does not move with the variance parameters (balanced designs
# with one residual sd), and differ with sigma_by or unequal occasion sds.
m_se <- glmmTMB(distance ~ age + (1 | Subject), data = orth, dispformula = ~ Sex, REML = FALSE)
H_se <- optimHess(m_se$fit$par, m_se$obj$fn, m_se$obj$gr); ib <- which(names(m_se$fit$par) == "beta")
facts$glmmTMB_se_convention <- list(
  fit = "orthodont_sigma_by_ml", parameters = I(names(m_se$fit$par)),
  se_vcov = as.list(sqrt(diag(vcov(m_se)$cond))), se_joint_hessian = I(unname(sqrt(diag(solve(H_se)))[ib])),
  se_beta_block = I(unname(sqrt(diag(solve(H_se[ib, ib]))))),
  se_nlme = fits$orthodont_sigma_by_ml$peers$nlme$se,
  note = paste("glmmTMB's vcov()$cond equals sqrt(diag(solve(H)))[beta] over all parameters; the beta block",
               "alone, solve(H[beta, beta]), is the GLS se of lme4 / nlme / brute_force. Compare our se with",
               "nlme's or with brute_force$se, not with glmmTMB's se, where they differ (sigma_by, cs, ar1)."))
facts$varident_reference$conclusion <- paste(
  "nlme's reference level (ratio 1) is the level of the first row after lme() sorts the data by the grouping",
  "factor's levels, i.e. the sigma_by level of the first subject in level order: neither the first level of",
  "the sigma_by factor nor the first row of the data as given. The per-level sds do not depend on it.")

versions <- list(R = R.version.string, glmmTMB = format(packageVersion("glmmTMB")),
                 nlme = format(packageVersion("nlme")), lme4 = format(packageVersion("lme4")),
                 TMB = format(packageVersion("TMB")), jsonlite = format(packageVersion("jsonlite")),
                 glmmTMB_valid_covstruct = I(names(glmmTMB:::.valid_covstruct)))
writeLines(toJSON(list(versions = versions, design = design, fits = fits, facts = facts),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null", null = "null"),
           "structures_reference.json")
