# The package's shipped data sets as R data frames (sourced by the *_reference.R scripts; run from
# tests/data): lmmcompare/datasets/data/<name>.csv with the factor levels, in order, of schema.json,
# as the package loads them.
datadir <- "../../lmmcompare/datasets/data"
sch <- jsonlite::fromJSON(file.path(datadir, "schema.json"), simplifyVector = FALSE)
load_ds <- function(name) {
  d <- read.csv(file.path(datadir, paste0(name, ".csv")), stringsAsFactors = FALSE)
  for (c in names(sch[[name]]$columns)) { cc <- sch[[name]]$columns[[c]]
    if (cc$type == "factor") d[[c]] <- factor(as.character(d[[c]]), levels = unlist(cc$levels)) }
  stopifnot(!anyNA(d))
  d
}
