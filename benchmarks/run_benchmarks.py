"""Time lmmcompare's frequentist engine against lme4, mixedlm and statsmodels, in one run.

Usage: python3 benchmarks/run_benchmarks.py [--quick] [--skip-insteval]

Every fit is timed in-process (lme4 inside R, the Python peers in this
process) as whole calls (formula + data -> fitted model) after one warm-up
call: ours and mixedlm's alternating, the minimum of 30 (3 for InstEval);
lme4's and statsmodels' the median of 9 (3). Peers that are not installed are shown as
"-": R with lme4 from Debian (r-base-core r-cran-lme4), `pip install mixedlm`,
`pip install statsmodels`. None of them is a dependency of lmmcompare.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from importlib import resources
from pathlib import Path

import lmmcompare as lc

BENCH_DIR = Path(__file__).resolve().parent   # designs.py, for child processes

CASES = [
    ("sleepstudy", "sleepstudy", "Reaction ~ Days + (Days | Subject)", True),
    ("Penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
    ("Pastes", "Pastes", "strength ~ 1 + (1 | batch/cask)", True),
    ("Orthodont", "Orthodont", "distance ~ age * Sex + (age | Subject)", True),
    ("InstEval (ML)", "InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", False),
    ("InstEval (REML, service x dept)", "InstEval", "y ~ 1 + service * dept + (1 | s) + (1 | d)", True),
]


def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _min_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def lmer_min_time(formula, data, reml, repeats):
    """Our whole ``lmer`` call, min of ``repeats`` without a warm-up (these fits take seconds), and the fit."""
    fits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds = _min_time(lambda: fits.append(lc.lmer(formula, data, reml=reml)), repeats)
    return seconds, fits[-1]


def time_mixedlm(data, formula, reml, repeats, minimum: bool = False):
    """mixedlm's whole call, the median of ``repeats`` after a warm-up (with ``minimum``: the min of
    ``repeats`` without one, as :func:`lmer_min_time` times ours on the large designs)."""
    try:
        import mixedlm
    except ImportError:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if minimum:
            runs = []
            seconds = _min_time(lambda: runs.append(mixedlm.lmer(formula, data, REML=reml)), repeats)
            res = runs[-1]
        else:
            res = mixedlm.lmer(formula, data, REML=reml)
            seconds = median_time(lambda: mixedlm.lmer(formula, data, REML=reml), repeats)
    return seconds, float(getattr(res, "deviance", float("nan")) if not reml else float("nan"))


def paired_min_times(data, formula, reml, repeats):
    """``(ours, mixedlm or None, our fit)``: each whole call timed ``repeats`` times, the two alternating
    (ours, mixedlm, ours, ...) after a warm-up of each, the minimum of each: issue 21's side-by-side
    measure, in which drift of the machine's speed reaches both alike."""
    try:
        import mixedlm
    except ImportError:
        mixedlm = None
    calls = [lambda: lc.lmer(formula, data, reml=reml)]
    if mixedlm is not None:
        calls.append(lambda: mixedlm.lmer(formula, data, REML=reml))
    times = [[] for _ in calls]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = calls[0]()
        for call in calls[1:]:
            call()
        for _ in range(repeats):
            for call, spent in zip(calls, times):
                t0 = time.perf_counter()
                call()
                spent.append(time.perf_counter() - t0)
    return min(times[0]), (min(times[1]) if mixedlm is not None else None), fit


def time_statsmodels(name, data, repeats):
    """statsmodels MixedLM where it can express the model (REML)."""
    try:
        import statsmodels.formula.api as smf
    except ImportError:
        return None
    setups = {
        "sleepstudy": lambda: smf.mixedlm("Reaction ~ Days", data, groups=data["Subject"], re_formula="~Days"),
        "Orthodont": lambda: smf.mixedlm("distance ~ age * Sex", data, groups=data["Subject"], re_formula="~age"),
        "Penicillin": lambda: smf.mixedlm("diameter ~ 1", data.assign(one=1), groups="one", re_formula="0",
                                          vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"}),
        "Pastes": lambda: smf.mixedlm("strength ~ 1", data, groups=data["batch"], re_formula="1",
                                      vc_formula={"cask": "0 + C(cask)"}),
    }
    if name not in setups:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return median_time(lambda: setups[name]().fit(reml=True), repeats)


R_SCRIPT = textwrap.dedent("""
    suppressMessages(library(lme4)); library(jsonlite)
    args <- commandArgs(TRUE); cases <- fromJSON(args[1], simplifyVector=FALSE)
    sch <- fromJSON(args[2], simplifyVector=FALSE); datadir <- args[3]
    for (cs in cases) {
      f <- file.path(datadir, paste0(cs$data, ".csv"))
      if (!file.exists(f)) f <- gzfile(paste0(f, ".gz"))
      d <- read.csv(f, stringsAsFactors=FALSE)
      for (c in names(sch[[cs$data]]$columns)) { cc <- sch[[cs$data]]$columns[[c]]
        if (cc$type == "factor") d[[c]] <- factor(as.character(d[[c]]), levels=unlist(cc$levels)) }
      fm <- as.formula(cs$formula)
      m <- lmer(fm, d, REML=cs$reml)
      times <- sapply(seq_len(cs$repeats), function(i) system.time(lmer(fm, d, REML=cs$reml))[["elapsed"]])
      cat(toJSON(list(name=cs$name, seconds=median(times), feval=m@optinfo$feval,
                      objective=if (cs$reml) REMLcrit(m) else deviance(m)), auto_unbox=TRUE, digits=NA), "\\n")
    }
""")


def time_lme4(repeats_small, repeats_large, names):
    if shutil.which("Rscript") is None:
        return {}
    check = subprocess.run(["Rscript", "-e", "library(lme4); library(jsonlite)"], capture_output=True)
    if check.returncode != 0:
        return {}
    data_dir = resources.files("lmmcompare.datasets") / "data"
    with tempfile.TemporaryDirectory() as tmp:
        cases = [dict(name=n, data=d, formula=f, reml=r, repeats=repeats_large if d == "InstEval" else repeats_small)
                 for n, d, f, r in CASES if n in names]
        cases_path = f"{tmp}/cases.json"
        with open(cases_path, "w") as fh:
            fh.write(json.dumps(cases))
        with open(f"{tmp}/bench.R", "w") as fh:
            fh.write(R_SCRIPT)
        out = subprocess.run(["Rscript", f"{tmp}/bench.R", cases_path, str(data_dir / "schema.json"), str(data_dir)],
                             capture_output=True, text=True)
    results = {}
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            results[row["name"]] = row
    return results


R_INFERENCE = textwrap.dedent("""
    suppressMessages(library(lme4)); library(jsonlite)
    args <- commandArgs(TRUE); datadir <- args[1]; nsim <- as.integer(args[2])
    d <- read.csv(file.path(datadir, "sleepstudy.csv")); d$Subject <- factor(d$Subject)
    m <- lmer(Reaction ~ Days + (Days | Subject), d)
    tp <- system.time(suppressMessages(confint(m, method = "profile", oldNames = FALSE)))[["elapsed"]]
    tb <- system.time(suppressMessages(confint(m, method = "boot", nsim = nsim, oldNames = FALSE)))[["elapsed"]]
    cat(toJSON(list(profile = tp, boot = tb), auto_unbox = TRUE), "\\n")
""")


def _mixedlm_refit_loops(nsim_boot, nsim_refit):
    """mixedlm's bootMer (one core), profile confint (it profiles the fixed effects only) and ``refit`` loop on
    sleepstudy (min of 3), or {} where mixedlm is not installed."""
    try:
        import mixedlm
    except ImportError:
        return {}
    model = mixedlm.lmer("Reaction ~ Days + (Days | Subject)", lc.load_dataset("sleepstudy"))
    sims = model.simulate(nsim=nsim_refit, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixedlm.bootMer(model, nsim=10, seed=1)
        return {"boot": _min_time(lambda: mixedlm.bootMer(model, nsim=nsim_boot, seed=1, n_jobs=1)),
                "profile_fixed": _min_time(lambda: model.confint(method="profile")),
                "refit": _min_time(lambda: [model.refit(sims[:, k]) for k in range(nsim_refit)])}


def inference_benchmark(nsim, nsim_boot=200, nsim_refit=1000):
    """Refit loops on sleepstudy: profile intervals, parametric bootstraps and a loop of refits to simulated
    responses, lmmcompare against lme4 and mixedlm (min of 3 for the loops on one core)."""
    formula = "Reaction ~ Days + (Days | Subject)"

    def fresh_profile(which=None):   # a profile is kept by its fit: time it on a fresh one
        fit = lc.lmer(formula, "sleepstudy")
        t0 = time.perf_counter()
        fit.profile(which=which)
        return time.perf_counter() - t0

    ours_profile = min(fresh_profile() for _ in range(3))
    ours_profile_fixed = min(fresh_profile(["(Intercept)", "Days"]) for _ in range(3))
    fit = lc.lmer(formula, "sleepstudy")
    t0 = time.perf_counter()
    fit.confint("boot", nsim=nsim, seed=1, n_jobs=2, progress=False)
    ours_boot = time.perf_counter() - t0
    ours_boot_one = _min_time(lambda: fit.confint("boot", nsim=nsim_boot, seed=2, n_jobs=1, progress=False))
    sims = fit.simulate(nsim_refit, seed=1).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_refit = _min_time(lambda: [fit.refit(sims[:, k]) for k in range(nsim_refit)])
    r = {}
    if shutil.which("Rscript"):
        data_dir = resources.files("lmmcompare.datasets") / "data"
        with tempfile.TemporaryDirectory() as tmp:
            with open(f"{tmp}/inf.R", "w") as fh:
                fh.write(R_INFERENCE)
            out = subprocess.run(["Rscript", f"{tmp}/inf.R", str(data_dir), str(nsim)], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if line.strip().startswith("{"):
                r = json.loads(line)
    mix = _mixedlm_refit_loops(nsim_boot, nsim_refit)

    def row(label, ours, lme4_s, mix_s):
        return (f"| {label} | {ours:.3f} | {fmt(lme4_s, 2)} | {fmt(None if lme4_s is None else lme4_s / ours, 1)} | "
                f"{fmt(mix_s, 3)} | {fmt(None if mix_s is None else mix_s / ours, 1)} |")

    rows = ["| sleepstudy REML | lmmcompare s | lme4 s | lme4 / ours | mixedlm s | mixedlm / ours |",
            "|---|---|---|---|---|---|",
            row("profile intervals, all 6 parameters (mixedlm profiles fixed effects only)", ours_profile,
                r.get("profile"), None),
            row("profile intervals, the 2 fixed effects", ours_profile_fixed, None, mix.get("profile_fixed")),
            row(f"parametric bootstrap, {nsim_boot} refits, one core", ours_boot_one, None, mix.get("boot")),
            row(f"parametric bootstrap, {nsim} refits (ours: n_jobs=2)", ours_boot, r.get("boot"), None),
            row(f"{nsim_refit} refits to simulated responses (`fit.refit(y)`, mixedlm's `refit`)", ours_refit, None,
                mix.get("refit"))]
    print("\n".join(rows))


def child_peak_memory_mb(setup: str, fit: str) -> tuple[float, float]:
    """``(after setup, peak)``: resident memory in MB of a fresh process that runs ``setup`` (imports, data)
    and then ``fit``.

    Read from /proc's ``VmHWM`` (the process's own high-water mark): ``getrusage``'s ``ru_maxrss`` of a
    child starts at its parent's peak at the fork, so after the large designs it reported the benchmark's
    own 988 MB.
    """
    code = ("import sys, warnings; warnings.simplefilter('ignore')\n"
            f"sys.path.insert(0, {str(BENCH_DIR)!r})\n"
            "def hwm():\n"
            "    return next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
            f"{setup}\nbase = hwm()\n{fit}\nprint(base, hwm())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak = (int(x) / 1024 for x in out.stdout.split())
    return base, peak


def insteval_peak_memory_mb():
    """Peak resident memory of a fresh process that loads InstEval and fits it by ML."""
    return child_peak_memory_mb("import lmmcompare as lc; d = lc.load_dataset('InstEval')",
                                "lc.lmer('y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)', d, reml=False)")


def crossed_peak_memory_mb():
    """Peak resident memory of a fresh process fitting the crossed 20,000 x 2,000 design: ours, mixedlm's (or None)."""
    setup = "from designs import CROSSED_FORMULA, crossed_large; d = crossed_large()"
    ours = child_peak_memory_mb(f"import lmmcompare as lc; {setup}", "lc.lmer(CROSSED_FORMULA, d)")
    try:
        theirs = child_peak_memory_mb(f"import mixedlm; {setup}", "mixedlm.lmer(CROSSED_FORMULA, d, REML=True)")
    except subprocess.CalledProcessError:
        theirs = None
    return ours, theirs


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def nested_benchmark():
    """Issue 21's large designs, 200,000-300,000 rows: the nested ``y ~ x + (1 | school/cls)`` and two large
    crossed factors ``y ~ x + (1 | subj) + (1 | item)``; ours and mixedlm's (min of 3 each), REML criteria."""
    from designs import CROSSED_FORMULA, NESTED_FORMULA, crossed_large, nested_schools

    designs = [(f"nested, {s:,} schools, {c:,} classes, 200,000 rows", NESTED_FORMULA, nested_schools(200_000, s, c))
               for s, c in ((2_000, 20_000), (10_000, 50_000))]
    designs.append(("crossed, 20,000 subjects x 2,000 items, 300,000 rows", CROSSED_FORMULA, crossed_large()))
    print("| large design | lmmcompare s (min of 3) | REML criterion | mixedlm s (min of 3) | mixedlm / ours |")
    print("|---|---|---|---|---|")
    for label, formula, data in designs:
        ours, fit = lmer_min_time(formula, data, True, 3)
        mix, _ = time_mixedlm(data, formula, True, 3, minimum=True)
        print(f"| {label} | {fmt(ours, 3)} | {fit.objective:.6f} | {fmt(mix, 3)} | "
              f"{fmt(None if mix is None else mix / ours, 1)} |", flush=True)
    (base, peak), theirs = crossed_peak_memory_mb()
    print(f"\nCrossed design, peak resident memory of a fresh process: ours {peak:.0f} MB ({base:.0f} MB with "
          f"the data loaded)" + ("" if theirs is None else f", mixedlm {theirs[1]:.0f} MB ({theirs[0]:.0f} MB)"),
          flush=True)


R_MAXIMAL = textwrap.dedent("""
    suppressMessages(library(lme4)); library(jsonlite)
    args <- commandArgs(TRUE); d <- read.csv(args[1]); d$subj <- factor(d$subj); d$item <- factor(d$item)
    fm <- y ~ a + b + c + (1 + a + b + c | subj) + (1 + a + b + c | item)
    t <- system.time(m <- suppressMessages(suppressWarnings(lmer(fm, d, REML = FALSE))))[["elapsed"]]
    cat(toJSON(list(seconds = t, deviance = deviance(m), feval = m@optinfo$feval), auto_unbox = TRUE,
               digits = NA), "\\n")
""")


def maximal_benchmark():
    """Issue 21's maximal crossed designs (ML): ours (min of 2), mixedlm's and lme4's (one fit each), deviances."""
    from designs import MAXIMAL_FORMULA, maximal_crossed

    print("| maximal crossed design (ML) | rows | lmmcompare s | evals | deviance | converged "
          "| mixedlm s | mixedlm / ours | lme4 s | lme4 evals | lme4 deviance | lme4 / ours |")
    print("|---" * 12 + "|")
    for subjects, items in ((56, 32), (200, 100)):
        data = maximal_crossed(subjects=subjects, items=items)
        ours, fit = lmer_min_time(MAXIMAL_FORMULA, data, False, 2)
        mix, _ = time_mixedlm(data, MAXIMAL_FORMULA, False, 1)
        r = {}
        if shutil.which("Rscript"):
            with tempfile.TemporaryDirectory() as tmp:
                data.to_csv(f"{tmp}/d.csv", index=False)
                with open(f"{tmp}/m.R", "w") as fh:
                    fh.write(R_MAXIMAL)
                out = subprocess.run(["Rscript", f"{tmp}/m.R", f"{tmp}/d.csv"], capture_output=True, text=True)
                lines = [x for x in out.stdout.splitlines() if x.strip().startswith("{")]
                r = json.loads(lines[-1]) if lines else {}
        lme4_s = r.get("seconds")
        print(f"| {subjects} subjects x {items} items | {len(data):,} | {fmt(ours, 2)} | {fit.n_evals} | "
              f"{fit.objective:.6f} | {fit.converged} | {fmt(mix, 2)} | {fmt(None if mix is None else mix / ours, 1)} | "
              f"{fmt(lme4_s, 2)} | {r.get('feval', '-')} | {fmt(r.get('deviance'), 6)} | "
              f"{fmt(None if lme4_s is None else lme4_s / ours, 1)} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--skip-insteval", action="store_true")
    parser.add_argument("--skip-inference", action="store_true", help="skip the profile/bootstrap timings")
    parser.add_argument("--skip-nested", action="store_true", help="skip the large nested and crossed designs")
    parser.add_argument("--skip-maximal", action="store_true", help="skip the maximal crossed designs")
    args = parser.parse_args(argv)
    small, large = (3, 1) if args.quick else (9, 3)
    cases = [c for c in CASES if not (args.skip_insteval and c[1] == "InstEval")]
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, lmmcompare {lc.__version__}", flush=True)
    lme4 = time_lme4(small, large, [c[0] for c in cases])
    header = ("| model | lmmcompare s | evals | lme4 s | lme4 evals | lme4 / ours | mixedlm s | mixedlm / ours "
              "| statsmodels s | statsmodels / ours |")
    rows = [header, "|---" * (header.count("|") - 1) + "|"]
    for name, dataset, formula, reml in cases:
        data = lc.load_dataset(dataset)
        repeats = large if dataset == "InstEval" else small
        paired = large if dataset == "InstEval" else 3 * small + 3   # small models: min of 30
        ours, mix, fit = paired_min_times(data, formula, reml, paired)
        sm = None if dataset == "InstEval" else time_statsmodels(name, data, repeats)
        r = lme4.get(name, {})
        lme4_s = r.get("seconds")
        ratio = lambda other: None if other is None else other / ours
        rows.append(f"| {name} | {fmt(ours, 4)} | {fit.n_evals} | {fmt(lme4_s)} | {r.get('feval', '-')} | "
                    f"{fmt(ratio(lme4_s), 1)} | {fmt(mix, 4)} | {fmt(ratio(mix), 1)} | {fmt(sm, 4)} | {fmt(ratio(sm), 1)} |")
        print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    if not args.skip_nested:
        print()
        nested_benchmark()
    if not args.skip_maximal:
        print()
        maximal_benchmark()
    if not args.skip_inference:
        print()
        inference_benchmark(200 if args.quick else 1000)
    if not args.skip_insteval:
        base, peak = insteval_peak_memory_mb()
        print(f"\nInstEval ML fit: peak resident memory {peak:.0f} MB (process with data loaded: {base:.0f} MB)")


if __name__ == "__main__":
    main()
