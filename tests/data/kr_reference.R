# Reference numbers for the Kenward-Roger tests on a large model (tests/test_kenward_roger.py).
# Usage (from the repository root):
#   Rscript tests/data/kr_reference.R tests/data > tests/data/kr_reference.json
# R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, nlme 3.1-162.
#
# Writes tests/data/MathAchieve.csv.gz (nlme's MathAchieve: School, SES, MathAch; 7,185 pupils
# in 160 schools), reads it back, fits MathAch ~ SES + (SES | School) by REML and records
# lme4's theta and sigma with pbkrtest's vcovAdj, its Lb_ddf for each coefficient and for
# L = I (both at once, via lmerTest's contest), and lmerTest's summary(ddf = "Kenward-Roger").
# pbkrtest builds n x n matrices: this takes about a minute and a few GB of memory.
suppressMessages({library(lme4); library(lmerTest, warn.conflicts = FALSE); library(pbkrtest)
                  library(jsonlite)})
outdir <- commandArgs(TRUE)[1]
path <- file.path(outdir, "MathAchieve.csv.gz")
ma <- nlme::MathAchieve
ma <- data.frame(School = as.character(ma$School), SES = ma$SES, MathAch = ma$MathAch)
con <- gzfile(path, "w"); write.csv(ma, con, row.names = FALSE); close(con)
d <- read.csv(path, colClasses = c(School = "character"))
d$School <- factor(d$School)
formula <- "MathAch ~ SES + (SES | School)"
m <- lmerTest::lmer(as.formula(formula), d, REML = TRUE)
seconds <- system.time(Vadj <- pbkrtest::vcovAdj(m))[["elapsed"]]
p <- length(fixef(m))
L1 <- diag(p)
ddf <- sapply(seq_len(p), function(i) pbkrtest::Lb_ddf(L1[i, , drop = FALSE], vcov(m), Vadj))
summ <- summary(m, ddf = "Kenward-Roger")$coefficients
both <- lmerTest::contest(m, L1, ddf = "Kenward-Roger")
kr_both <- pbkrtest::KRmodcomp(m, L1)$test
out <- list(list(
  id = "mathachieve_reml", formula = formula, data = "MathAchieve.csv.gz", reml = TRUE, nobs = nrow(d),
  ngrps = nlevels(d$School), theta = unname(getME(m, "theta")), sigma = sigma(m), criterion = REMLcrit(m),
  fixef = as.list(fixef(m)),
  kr_vcov = unname(as.matrix(Vadj)), kr_se = as.list(setNames(sqrt(diag(as.matrix(Vadj))), names(fixef(m)))),
  kr_df = as.list(setNames(ddf, names(fixef(m)))),
  lmertest_kr_df = as.list(summ[, "df"]), lmertest_kr_se = as.list(summ[, "Std. Error"]),
  contest_identity = list(L = L1, F = both[["F value"]], NumDF = both$NumDF, DenDF = both$DenDF,
                          p = both[["Pr(>F)"]]),
  krmodcomp_identity = list(F_scaled = kr_both["Ftest", "stat"], ddf = kr_both["Ftest", "ddf"],
                            F_scaling = kr_both["Ftest", "F.scaling"], p = kr_both["Ftest", "p.value"]),
  pbkrtest_vcovAdj_seconds = seconds))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
