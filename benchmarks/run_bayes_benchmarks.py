"""Bulk-ESS per second of the Bayesian engine, by parameterisation, against bambi.

Usage: python3 benchmarks/run_bayes_benchmarks.py [--quick] [--skip-large]

ESS/s is the smallest bulk ESS over the model's parameters (fixed effects,
sds, correlations, sigma) divided by the wall time of the whole call
(model building, compilation, sampling, post-processing). bambi is run on
the same model when it is importable (install it in its own environment: it
is never a dependency of lmmcompare); bambi's default model has uncorrelated
group-specific terms, so it is given the formula with ``||`` semantics noted.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd

import lmmcompare as lc


def simulated_large(n=20_000, groups=400, seed=0):
    """Two-term correlated model: y = 2 + 0.5 x + b0_g + b1_g x + e, corr(b0, b1) = 0.3."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    cov = np.array([[1.0, 0.3 * 0.5], [0.3 * 0.5, 0.25]])
    b = rng.multivariate_normal([0, 0], cov, size=groups)
    y = 2 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(scale=1.5, size=n)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g.astype(str))})


def ours(formula, data, parameterization, draws, tune, chains, sampler="pymc"):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lc.bayes(formula, data, draws=draws, tune=tune, chains=chains, seed=1, progressbar=False,
                       parameterization=parameterization, sampler=sampler)
    wall = time.perf_counter() - t0
    ess = az.ess(fit.idata, var_names=fit.parameter_names, method="bulk")
    smallest = min(float(ess[v]) for v in fit.parameter_names)
    div = int(fit.idata.sample_stats["diverging"].sum())
    return wall, smallest, div


def auto_choice(formula, data):
    """The form ``parameterization="auto"`` (the default) picks for this model."""
    from lmmcompare.bayesian.forms import term_forms

    return term_forms(lc.ModelSpec.from_formula(formula, data))[0]


def bambi_run(formula, data, draws, tune, chains):
    try:
        import bambi as bmb
    except Exception:
        return None
    t0 = time.perf_counter()
    model = bmb.Model(formula, data)
    idata = model.fit(draws=draws, tune=tune, chains=chains, random_seed=1, progressbar=False)
    wall = time.perf_counter() - t0
    ess = az.ess(idata, method="bulk")
    names = [v for v in ess.data_vars if not v.endswith("_offset") and ess[v].ndim == 0]
    return wall, min(float(ess[v]) for v in names), int(idata.sample_stats["diverging"].sum())


def bambi_version():
    import bambi

    return bambi.__version__


def pm_version():
    import pymc

    return pymc.__version__


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args(argv)
    small = (300, 300, 2) if args.quick else (1000, 1000, 4)
    large = (300, 300, 2)   # the noncentred and centred forms take minutes per 1,000 draws here
    cases = [("sleepstudy", "Reaction ~ Days + (Days | Subject)", lc.load_dataset("sleepstudy"), small)]
    if not args.skip_large:
        cases.append(("simulated 20,000 rows, (x \\| g), 400 groups", "y ~ x + (x | g)", simulated_large(), large))
    try:
        import nutpie  # noqa: F401

        samplers = ("pymc", "nutpie")
    except ImportError:
        samplers = ("pymc",)
    rows = ["| model | sampler | chains x (tune + draws) | wall s | smallest bulk ESS | ESS/s | divergences |",
            "|---|---|---|---|---|---|---|"]
    for name, formula, data, (draws, tune, chains) in cases:
        setting = f"{chains} x ({tune} + {draws})"
        default = auto_choice(formula, data)
        print(f"{name}: the default (parameterization='auto') samples it {default}", flush=True)
        for sampler in samplers:
            for par in ("noncentered", "centered", "marginal"):
                wall, ess, div = ours(formula, data, par, draws, tune, chains, sampler)
                label = f"{par}, the default" if par == default else par
                rows.append(f"| {name} | lmmcompare {label} ({sampler}) | {setting} | {wall:.1f} | {ess:.0f} "
                            f"| {ess / wall:.1f} | {div} |")
                print(rows[-1], flush=True)
        res = bambi_run(formula, data, draws, tune, chains)
        if res is not None:
            wall, ess, div = res
            rows.append(f"| {name} | bambi {bambi_version()} (uncorrelated terms) | {setting} | {wall:.1f} | {ess:.0f} "
                        f"| {ess / wall:.1f} | {div} |")
            print(rows[-1], flush=True)
    print(f"\nPyMC {pm_version()}, {os.cpu_count()} cores\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
