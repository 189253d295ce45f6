"""Simulation-based calibration of the Bayesian model of Reaction ~ Days + (Days | Subject).

Draws parameters and responses from the prior predictive distribution of the
noncentered PyMC model (default priors, scaled to the real sleepstudy data),
fits each response with the marginal model, and ranks each true parameter among
the posterior draws (Talts et al. 2018). Uniform ranks mean the two
parameterisations and the sampler agree with the prior they were given.

Run: python3 case_studies/sbc_sleepstudy.py [--quick] [--nsim N]
(nutpie, when installed, samples the refits much faster than PyMC.)
"""
import argparse
import importlib.util
import time

from _common import OUT
from lmmcompare.validate import sbc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nsim", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="30 simulations")
    args = parser.parse_args()
    nsim = 30 if args.quick else args.nsim
    sampler = "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    OUT.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    result = sbc("Reaction ~ Days + (Days | Subject)", "sleepstudy", nsim=nsim, draws=500, tune=500, chains=2,
                 thin=5, seed=20261125, sampler=sampler)
    seconds = time.perf_counter() - t0
    table = result.uniformity()
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    path = result.report(OUT / "sbc_sleepstudy.html")
    print(f"\n{nsim} fits in {seconds:.0f} s (sampler {sampler}); {int(result.divergences.sum())} divergent "
          f"transitions in all; report: {path}")
    worst = table["p_value"].idxmin()
    print(f"\nFINDING: smallest uniformity p-value {table['p_value'].min():.3f} ({worst}); ranks out of "
          f"L = {result.n_draws}; mean rank fractions between {table['mean_rank_fraction'].min():.2f} and "
          f"{table['mean_rank_fraction'].max():.2f}")


if __name__ == "__main__":
    main()
