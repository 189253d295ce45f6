# Shared by the *_reference.R scripts (sourced; run from tests/data): the package's shipped data
# sets as R data frames (lmmcompare/datasets/data/<name>.csv with the factor levels, in order, of
# schema.json, as the package loads them), and conds(), a value with the warnings and messages it raised.
datadir <- "../../lmmcompare/datasets/data"
sch <- jsonlite::fromJSON(file.path(datadir, "schema.json"), simplifyVector = FALSE)
load_ds <- function(name) {
  d <- read.csv(file.path(datadir, paste0(name, ".csv")), stringsAsFactors = FALSE)
  for (c in names(sch[[name]]$columns)) { cc <- sch[[name]]$columns[[c]]
    if (cc$type == "factor") d[[c]] <- factor(as.character(d[[c]]), levels = unlist(cc$levels)) }
  stopifnot(!anyNA(d))
  d
}

conds <- function(expr) {                       # value plus every warning/message it raised
  msgs <- character(0)
  val <- withCallingHandlers(expr,
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  list(value = val, messages = msgs)
}
