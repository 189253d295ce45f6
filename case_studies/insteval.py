"""InstEval: a large crossed model (73,421 ratings; students, lecturers, departments), by ML.

Shows: the frequentist engine fits y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) in
a few seconds (lme4 needs about 30 s on the same machine). The Bayesian marginal
parameterisation of three crossed factors needs the blocked sparse Cholesky inside
PyMC, which is not built yet (see issue 5): this study runs the frequentist part and
says so.
Run: python3 case_studies/insteval.py
"""
import time
import warnings

import lmmcompare as lc

if __name__ == "__main__":
    data = lc.load_dataset("InstEval")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lc.lmer("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", data, reml=False)
    seconds = time.perf_counter() - t0
    print(fit.summary())
    vc = fit.variance_parameters()
    print(f"\nFINDING: ML fit in {seconds:.1f} s ({fit.n_evals} evaluations); lecturer sd {vc['sd_(Intercept)|d']:.3f} "
          f"> student sd {vc['sd_(Intercept)|s']:.3f} > department sd {vc['sd_(Intercept)|dept']:.3f}; "
          "Bayesian marginal fit of three crossed factors: not available yet")
