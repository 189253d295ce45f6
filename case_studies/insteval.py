"""InstEval: a large crossed model (73,421 ratings; students, lecturers, departments), by ML and by Bayes.

Shows: the frequentist engine fits y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) in a
few seconds (lme4 needs about 30 s on the same machine), and the Bayesian marginal
parameterisation samples the same model with the 4,114 random effects integrated out:
each log density is one pass of the blocked Cholesky factor, and ``sampler="auto"``
samples by independence Metropolis-Hastings from the posterior mode's Laplace
approximation (one density per draw, no gradient; lmmcompare.bayesian.independence),
and the random effects are drawn afterwards from their exact conditional. With this much data the
posterior of every parameter sits on the ML estimate and the two sets of intervals
nearly coincide; the department sd (14 levels) is where they differ most.
Run: python3 case_studies/insteval.py [--quick]
"""
import os
import sys
import time
import warnings

# the two chains run in two processes on a 2-core machine: one BLAS thread each, or
# numpy's and scipy's OpenBLAS thread pools fight over the cores (10x slower gradients here)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _common import OUT

import lmmcompare as lc

FORMULA = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)"

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    quick = "--quick" in sys.argv
    spec = lc.ModelSpec.from_formula(FORMULA, lc.load_dataset("InstEval"))
    t0 = time.perf_counter()
    fit = lc.lmer(spec, reml=False)
    freq_seconds = time.perf_counter() - t0
    print(fit.summary())
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        post = lc.bayes(spec, parameterization="marginal", chains=2, cores=2, draws=100 if quick else 400,
                        tune=100 if quick else 200, seed=20261125, log_likelihood=False)
    cmp = lc.compare(fit, post)
    print(cmp.to_markdown(ci="profile"))
    path = cmp.report(OUT / "insteval.html", ci="profile")
    print(f"\nreport: {path}")
    table = cmp.table(ci="profile")
    diag = post.diagnostics()
    worst = (table["post_median"] - table["estimate"]).abs().div(table["post_sd"]).idxmax()
    effort = (f"{post.sampler} sampler, {100 * diag.attrs['moves']:.0f}% of draws moved" if "moves" in diag.attrs
              else f"{post.sampler} sampler, {diag.attrs['divergences']} divergences")
    vc = fit.variance_parameters()
    print(f"\nFINDING: ML fit in {freq_seconds:.1f} s ({fit.n_evals} evaluations); Bayesian marginal fit "
          f"{post.seconds:.0f} s for {post.idata.posterior.sizes['chain']} x {post.idata.posterior.sizes['draw']} "
          f"draws (min bulk ESS {diag['ess_bulk'].min():.0f}, max R-hat {diag['r_hat'].max():.3f}, "
          f"{effort}); lecturer sd {vc['sd_(Intercept)|d']:.3f} > student sd "
          f"{vc['sd_(Intercept)|s']:.3f} > department sd {vc['sd_(Intercept)|dept']:.3f} by ML, posterior "
          f"medians {table.loc['sd_(Intercept)|d', 'post_median']:.3f}, {table.loc['sd_(Intercept)|s', 'post_median']:.3f}, "
          f"{table.loc['sd_(Intercept)|dept', 'post_median']:.3f}; largest |median - ML| / posterior sd: "
          f"{worst} ({abs(table.loc[worst, 'post_median'] - table.loc[worst, 'estimate']) / table.loc[worst, 'post_sd']:.2f})")
