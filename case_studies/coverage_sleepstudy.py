"""Coverage of 95% intervals for sleepstudy, Reaction ~ Days + (Days | Subject).

Simulates data sets from the REML fit, refits each by REML (Wald, profile and
parametric-bootstrap intervals) and by the marginal Bayesian model (equal-tailed
posterior intervals, default priors scaled to the real data), and reports how
often each interval holds the value the data came from.  Replicates are
written to case_studies/out/coverage_sleepstudy/ as they finish, so an
interrupted run continues where it stopped.

Run: python3 case_studies/coverage_sleepstudy.py [--quick] [--nsim N] [--jobs J]
(nutpie, when installed, samples the Bayesian refits ~30x faster than PyMC.)
"""
import argparse
import importlib.util
import time

import lmmcompare as lc
from _common import OUT
from lmmcompare.validate import coverage


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nsim", type=int, default=300)
    parser.add_argument("--boot-nsim", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 replicates, 50 bootstrap refits")
    args = parser.parse_args()
    nsim, boot_nsim = (20, 50) if args.quick else (args.nsim, args.boot_nsim)
    sampler = "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    OUT.mkdir(exist_ok=True)
    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    t0 = time.perf_counter()
    result = coverage(fit, nsim=nsim, methods=("wald", "profile", "boot", "bayes"), seed=20261125,
                      boot_nsim=boot_nsim, n_jobs=args.jobs, directory=OUT / f"coverage_sleepstudy_{nsim}",
                      bayes_options={"sampler": sampler, "draws": 1000, "tune": 1000, "chains": 2})
    seconds = time.perf_counter() - t0
    table = result.table()
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print()
    print(result.summary_text())
    path = result.report(OUT / "coverage_sleepstudy.html")
    print(f"\n{nsim} replicates in {seconds:.0f} s (Bayesian sampler: {sampler}); report: {path}")
    cov = table["coverage"].unstack("method")
    print("\nFINDING: mean coverage over the parameters: "
          + ", ".join(f"{m} {cov[m].mean():.1%}" for m in cov.columns)
          + "; lowest: " + ", ".join(f"{m} {cov[m].min():.1%} ({cov[m].idxmin()})" for m in cov.columns))


if __name__ == "__main__":
    main()
