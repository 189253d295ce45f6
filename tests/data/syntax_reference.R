# Reference numbers for tests/test_syntax_reference.py: formula syntax and column names as lme4 reads them.
# Usage (from the repository root):
#   Rscript tests/data/syntax_reference.R lmmcompare/datasets/data > tests/data/syntax_reference.json
# R 4.2, lme4 1.1-31.  The data are the CSVs shipped with lmmcompare, factor levels in the
# order of schema.json.  Per case: the fixed-effects model matrix (column names, values),
# lme4's fixef, REML criterion and theta, and as.data.frame(VarCorr) with the group labels
# print(VarCorr) shows.
suppressMessages({library(lme4); library(jsonlite)})
datadir <- commandArgs(TRUE)[1]
sch <- fromJSON(file.path(datadir, "schema.json"), simplifyVector = FALSE)
load_ds <- function(name) {
  d <- read.csv(file.path(datadir, paste0(name, ".csv")), stringsAsFactors = FALSE)
  for (c in names(sch[[name]]$columns)) { cc <- sch[[name]]$columns[[c]]
    if (cc$type == "factor") d[[c]] <- factor(as.character(d[[c]]), levels = unlist(cc$levels)) }
  d
}
orth <- load_ds("Orthodont"); cake <- load_ds("cake"); sleep <- load_ds("sleepstudy")
sleep_named <- sleep; sleep_named$Intercept <- sin(seq_len(nrow(sleep)))   # a data column named Intercept
cases <- list(
  list(id = "in_alone", data = "Orthodont", frame = orth, formula = "distance ~ age %in% Sex + (1 | Subject)"),
  list(id = "in_nested_slopes", data = "Orthodont", frame = orth,
       formula = "distance ~ Sex + age %in% Sex + (1 | Subject)"),
  list(id = "in_with_main_effect", data = "Orthodont", frame = orth,
       formula = "distance ~ age + age %in% Sex + (1 | Subject)"),
  list(id = "in_cake", data = "cake", frame = cake,
       formula = "angle ~ recipe + temp %in% recipe + (1 | recipe:replicate)"),
  list(id = "in_compound_left", data = "cake", frame = cake,
       formula = "angle ~ (temp + I(temp^2)) %in% recipe + (1 | recipe:replicate)"),
  list(id = "in_compound_right", data = "cake", frame = cake,
       formula = "angle ~ temp %in% (recipe + replicate) + (1 | recipe:replicate)"),
  list(id = "in_random", data = "cake", frame = cake, formula = "angle ~ recipe + (0 + temp %in% recipe | replicate)"),
  list(id = "colon_reversed_call", data = "cake", frame = cake,
       formula = "angle ~ temp:recipe + I(temp^2):recipe + (1 | recipe:replicate)"),
  list(id = "colon_reversed", data = "cake", frame = cake,
       formula = "angle ~ recipe + temp:recipe + (1 | recipe:replicate)"),
  list(id = "intercept_column", data = "sleepstudy_named", frame = sleep_named,
       formula = "Reaction ~ Days + Intercept + (1 | Subject)"),
  list(id = "intercept_column_slope", data = "sleepstudy_named", frame = sleep_named,
       formula = "Reaction ~ Days + (Intercept | Subject)"),
  list(id = "two_intercepts", data = "sleepstudy", frame = sleep,
       formula = "Reaction ~ Days + (Days | Subject) + (1 | Subject)"),
  list(id = "one_intercept", data = "sleepstudy", frame = sleep, formula = "Reaction ~ Days + (Days | Subject)"))
out <- lapply(cases, function(cs) {
  m <- suppressWarnings(suppressMessages(lmer(as.formula(cs$formula), cs$frame, REML = TRUE)))
  X <- getME(m, "X")
  vc <- as.data.frame(VarCorr(m))
  lines <- capture.output(print(VarCorr(m), comp = "Variance"))[-1]
  printed <- sub(" .*$", "", substring(lines[!startsWith(lines, "  ")], 2))   # the Groups column
  list(id = cs$id, data = cs$data, formula = cs$formula, columns = colnames(X), X = unname(split(X, col(X))),
       fixef = unname(fixef(m)), criterion = REMLcrit(m), theta = unname(getME(m, "theta")),
       varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov),
       printed_groups = printed)
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"))
