# Reference numbers for tests/test_anova_types.py: lmerTest's single-fit anova().
# Usage (from the repository root):
#   Rscript tests/data/anova_reference.R lmmcompare/datasets/data > anova_reference.json
# R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2.  The data are the CSVs
# shipped with lmmcompare, factor levels in the order of schema.json (so cake's
# temperature is an unordered factor, coded by treatment contrasts, unlike
# lme4::cake where it is ordered and coded by contr.poly; the case
# "cake_ordered" fits lme4's coding to show the type III table does not change).
suppressMessages({library(lme4); library(lmerTest, warn.conflicts = FALSE); library(jsonlite)})
datadir <- commandArgs(TRUE)[1]
sch <- fromJSON(file.path(datadir, "schema.json"), simplifyVector = FALSE)
load_ds <- function(name) {
  d <- read.csv(file.path(datadir, paste0(name, ".csv")), stringsAsFactors = FALSE)
  for (c in names(sch[[name]]$columns)) { cc <- sch[[name]]$columns[[c]]
    if (cc$type == "factor") d[[c]] <- factor(as.character(d[[c]]), levels = unlist(cc$levels)) }
  d
}
orth <- load_ds("Orthodont"); cake <- load_ds("cake"); sleep <- load_ds("sleepstudy")
orth_f <- within(orth, { Sex <- factor(Sex, levels = c("Female", "Male")); age_c <- age - 11 })
cake_ord <- within(cake, temperature <- factor(temperature, ordered = TRUE))
cake_relev <- within(cake, recipe <- factor(recipe, levels = c("C", "B", "A")))
cake_sum <- cake; contrasts(cake_sum$recipe) <- contr.sum(3)
cake_miss <- cake[!(cake$recipe == "C" & cake$temperature == "225"), ]   # an empty cell: aliased column
drop <- with(cake, (recipe == "A" & replicate %in% c("1", "2") & temperature %in% c("175", "185")) |
                   (recipe == "B" & replicate == "3" & temperature == "225") | (recipe == "C" & replicate == "4"))
cake_unbal <- cake[!drop, ]                                                # unequal cell counts, no empty cell
sleep2 <- within(sleep, Days2 <- 2 * Days)                                 # a fully aliased term
cases <- list(
  list(id = "orthodont", data = orth, formula = "distance ~ age * Sex + (age | Subject)"),
  list(id = "orthodont_female_first", data = orth_f, formula = "distance ~ age * Sex + (age | Subject)"),
  list(id = "orthodont_centred", data = orth_f, formula = "distance ~ age_c * Sex + (age_c | Subject)"),
  list(id = "cake", data = cake, formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "cake_ordered", data = cake_ord, formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "cake_relevelled", data = cake_relev, formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "cake_sum", data = cake_sum, formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "cake_temp", data = cake, formula = "angle ~ recipe * temp + (1 | recipe:replicate)"),
  list(id = "cake_unbalanced", data = cake_unbal, formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "cake_nested", data = cake_unbal, formula = "angle ~ recipe + recipe:temperature + (1 | recipe:replicate)"),
  list(id = "cake_missing_cell", data = cake_miss, formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "sleepstudy", data = sleep, formula = "Reaction ~ Days + (Days | Subject)"),
  list(id = "sleepstudy_aliased", data = sleep2, formula = "Reaction ~ Days + Days2 + (Days | Subject)"))
tab <- function(a) list(terms = rownames(a), F = a[["F value"]], NumDF = a$NumDF, DenDF = a$DenDF,
                        p = a[["Pr(>F)"]], SumSq = a[["Sum Sq"]], MeanSq = a[["Mean Sq"]])
out <- lapply(cases, function(cs) {
  m <- suppressMessages(lmerTest::lmer(as.formula(cs$formula), cs$data, REML = TRUE))
  r <- list(id = cs$id, formula = cs$formula, theta = unname(getME(m, "theta")), criterion = REMLcrit(m))
  for (type in c("III", "II", "I")) for (ddf in c("Satterthwaite", "Kenward-Roger"))
    r[[paste(type, ddf)]] <- tab(suppressMessages(anova(m, type = type, ddf = ddf)))
  r
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"))
