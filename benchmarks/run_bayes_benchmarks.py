"""The Bayesian engine's default call against bambi and brms: ESS per second of a fresh process.

Usage::

    python3 benchmarks/run_bayes_benchmarks.py [--python PATH] [--bambi-python PATH] [--brms]
        [--cases sleepstudy,slopes,references,insteval,maximal] [--draws 1000] [--chains 4]

Every measurement is a new interpreter (or ``Rscript``), timed from start to
exit: import, model building, compilation, sampling and post-processing, as a
user running a script pays them.  ESS is the smallest bulk ESS over the fixed
effects, sds, correlations and sigma; R-hat the largest.  bambi runs in its own
environment (``--bambi-python``; never a dependency of lmmcompare) at its own
defaults, which sample uncorrelated group effects, a simpler model with no
correlation to mix, so its ratio flatters it.  brms (``--brms``) runs through
``Rscript`` with the same chains, draws and two cores.

``--python`` runs lmmcompare in another environment.  For a like-for-like
comparison give it one made as bambi's was: a fresh virtual environment with
lmmcompare and its dependencies only, at the same PyMC, PyTensor, ArviZ, numpy,
scipy and numba versions.  What else an environment holds changes the wall time
of a fresh process: PyMC imports IPython where it is installed (with
prompt_toolkit, jedi and pygments) and xarray imports dask, which cost a second
of sleepstudy's 7 s in import and exit.  Both environments have their packages'
bytecode compiled, as ``pip install`` leaves them (:func:`compile_bytecode`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from designs import MAXIMAL_FORMULA, maximal_crossed, simulated_slopes  # noqa: E402

REFERENCE_CASES = [   # every distinct model of tests/data/cases.json (lme4 1.1-31 references)
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject)"),
    ("Dyestuff", "Yield ~ 1 + (1 | Batch)"),
    ("Dyestuff2", "Yield ~ 1 + (1 | Batch)"),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)"),
    ("cake", "angle ~ recipe * temp + (1 | recipe:replicate)"),
    ("Orthodont", "distance ~ age * Sex + (age | Subject)"),
]
INSTEVAL = ("InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)")

OURS = """
import json, sys, time, warnings
import lmmcompare as lc
data = {data}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = lc.bayes({formula!r}, data, draws={draws}, tune={draws}, chains={chains}, seed=1, progressbar=False,
                   log_likelihood={loglik})
diag = fit.diagnostics()
print("RESULT", json.dumps({{"ess": float(diag["ess_bulk"].min()), "rhat": float(diag["r_hat"].max()),
      "divergences": int(diag.attrs["divergences"]), "grad_per_draw": diag.attrs.get("gradients_per_draw"),
      "depth": diag.attrs.get("mean_tree_depth"), "sampling_s": fit.seconds, "sampler": fit.sampler,
      "acceptance": float(fit.sampler_stats()["acceptance"].mean())}}))
"""

BAMBI = """
import json, warnings
import arviz as az, bambi as bmb, pandas as pd
data = pd.read_csv({path!r})
for column in {factors!r}:
    data[column] = data[column].astype(str)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    idata = bmb.Model({formula!r}, data).fit(draws={draws}, tune={draws}, chains={chains}, random_seed=1,
                                               progressbar=False)
post = idata.posterior
names = [v for v in post.data_vars if post[v].ndim == 2]   # fixed effects, sds, sigma: no per-level effects
ess = az.ess(idata, var_names=names, method="bulk")
rhat = az.rhat(idata, var_names=names)
print("RESULT", json.dumps({{"ess": float(min(float(ess[v].min()) for v in names)),
      "rhat": float(max(float(rhat[v].max()) for v in names)),
      "divergences": int(idata.sample_stats["diverging"].sum())}}))
"""

BRMS = """
suppressMessages({{library(brms); library(posterior)}})
d <- read.csv("{path}")
for (f in c({factors})) d[[f]] <- factor(d[[f]])
fit <- brm({formula}, data = d, chains = {chains}, iter = {iter}, warmup = {draws}, cores = 2,
           seed = 1, refresh = 0, silent = 2)
s <- summarise_draws(as_draws_df(fit), "rhat", "ess_bulk")
s <- s[grepl("^(b_|sd_|cor_|sigma)", s$variable), ]
np <- nuts_params(fit)
cat("RESULT", sprintf('{{"ess": %f, "rhat": %f, "divergences": %d}}', min(s$ess_bulk), max(s$rhat),
    sum(np$Value[np$Parameter == "divergent__"])), "\\n")
"""


def timed(command: list[str]) -> dict:
    """Run ``command``; its ``RESULT {json}`` line plus the process's wall seconds (or the error's tail)."""
    t0 = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "wall": wall}
    return {"error": (out.stderr or out.stdout)[-600:], "wall": wall}


def ours(python: str, data_expr: str, formula: str, draws: int, chains: int, loglik: bool = True) -> dict:
    code = OURS.format(data=data_expr, formula=formula, draws=draws, chains=chains, loglik=loglik)
    return timed([python, "-c", textwrap.dedent(code)])


def compile_bytecode(python: str) -> None:
    """Compile lmmcompare's modules to bytecode for ``python``, as ``pip install`` does for a package it
    installs (an editable install, or ``PYTHONDONTWRITEBYTECODE`` set, would otherwise leave every import to
    compile the sources: 0.1 s per process)."""
    package = subprocess.run([python, "-c", "import lmmcompare, os; print(os.path.dirname(lmmcompare.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", package], check=True, capture_output=True)


def bambi(python: str, path: str, formula: str, factors: list[str], draws: int, chains: int) -> dict:
    code = BAMBI.format(path=path, formula=formula, factors=factors, draws=draws, chains=chains)
    return timed([python, "-c", textwrap.dedent(code)])


def brms(path: str, formula: str, factors: list[str], draws: int, chains: int) -> dict:
    script = BRMS.format(path=path, formula=formula, factors=", ".join(f'"{f}"' for f in factors),
                         chains=chains, iter=2 * draws, draws=draws)
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as handle:
        handle.write(script)
    return timed(["Rscript", handle.name])


def row(model: str, who: str, setting: str, r: dict, reference: dict | None = None) -> str:
    if "error" in r:
        return f"| {model} | {who} | {setting} | {r['wall']:.1f} | failed: {r['error'].splitlines()[-1][:80]} | | | | |"
    rate = r["ess"] / r["wall"]
    ratio = f"{rate / (reference['ess'] / reference['wall']):.2f}x" if reference and "error" not in reference else ""
    depth = f"{r['grad_per_draw']:.1f}" if r.get("grad_per_draw") else ""
    if r.get("sampler") == "independence":   # one log density per draw, no gradient (lmmcompare.bayesian.independence)
        depth = f"0 (independence MH, acceptance {r['acceptance']:.2f})"
    return (f"| {model} | {who} | {setting} | {r['wall']:.1f} | {r['ess']:.0f} | {rate:.1f} | {ratio} | "
            f"{r['rhat']:.3f} | {r['divergences']} | {depth} |")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=sys.executable,
                        help="python of the environment lmmcompare runs in (default: this one)")
    parser.add_argument("--bambi-python", help="python of an environment with bambi installed")
    parser.add_argument("--brms", action="store_true", help="also run brms through Rscript (maximal design, Orthodont)")
    parser.add_argument("--cases", default="sleepstudy,slopes,references,insteval,maximal")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    draws, chains = args.draws, args.chains
    setting = f"{chains} x ({draws} + {draws})"
    folder = Path(tempfile.mkdtemp())
    rows = ["| model | software | chains x (tune + draws) | wall s | min bulk ESS | ESS/s | ours vs peer | "
            "max R-hat | divergences | gradients per draw |", "|---|---|---|---|---|---|---|---|---|---|"]

    def show(line):
        rows.append(line)
        print(line, flush=True)

    head_to_head = []
    import lmmcompare as lc

    compile_bytecode(args.python)

    if "sleepstudy" in cases:
        path = folder / "sleepstudy.csv"
        lc.load_dataset("sleepstudy").to_csv(path, index=False)
        head_to_head.append(("sleepstudy (Days \\| Subject)", "Reaction ~ Days + (Days | Subject)",
                             "'sleepstudy'", str(path), ["Subject"]))
    if "slopes" in cases:
        path = folder / "slopes.csv"
        simulated_slopes().to_csv(path, index=False)
        head_to_head.append(("simulated 7,000 rows, (x \\| g), 160 groups", "y ~ x + (x | g)",
                             f"__import__('pandas').read_csv({str(path)!r}, dtype={{'g': str}})", str(path), ["g"]))
    for model, formula, data_expr, path, factors in head_to_head:
        mine = ours(args.python, data_expr, formula, draws, chains)
        peer = bambi(args.bambi_python, path, formula, factors, draws, chains) if args.bambi_python else None
        show(row(model, "lmmcompare default (marginal, PyMC NUTS)", setting, mine, peer))
        if peer is not None:
            show(row(model, "bambi (uncorrelated terms)", setting, peer))
    if "references" in cases:
        for data, formula in REFERENCE_CASES:
            model = f"{data}: {formula.replace('|', chr(92) + '|')}"
            mine = ours(args.python, repr(data), formula, draws, chains)
            # the hardest reference posterior (an L-shaped one in its sds), beside Stan's at brms' defaults
            peer = None
            if args.brms and data == "Orthodont":
                path = folder / "Orthodont.csv"
                lc.load_dataset("Orthodont").to_csv(path, index=False)
                peer = brms(str(path), formula, ["Subject"], draws, chains)
            show(row(model, "lmmcompare default", setting, mine, peer))
            if peer is not None:
                show(row(model, "brms (Stan)", setting, peer))
    if "insteval" in cases:
        data, formula = INSTEVAL
        show(row(f"{data}: {formula.replace('|', chr(92) + '|')}", "lmmcompare default (no pointwise log-lik)",
                 setting, ours(args.python, repr(data), formula, draws, chains, loglik=False)))
    if "maximal" in cases:
        path = folder / "maximal.csv"
        maximal_crossed().to_csv(path, index=False)
        data_expr = f"__import__('pandas').read_csv({str(path)!r})"
        model = "maximal crossed, 56 x 32, 1,791 rows"
        peer = brms(str(path), MAXIMAL_FORMULA, ["subj", "item"], draws, chains) if args.brms else None
        show(row(model, "lmmcompare default", setting,
                 ours(args.python, data_expr, MAXIMAL_FORMULA, draws, chains, False), peer))
        if peer is not None:
            show(row(model, "brms (Stan)", setting, peer))
    print(f"\n{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, lmmcompare in "
          f"{args.python}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
