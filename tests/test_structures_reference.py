"""Structured covariances and sigma_by against glmmTMB, nlme and lme4 (tests/data/structures_reference.R).

Every fit of the reference file: the criterion matches the best peer's to 1e-6
or is lower; fixed effects 1e-5; sds and residual sds 1e-3 (relative); a common
correlation or rho 1e-3.  Standard errors are compared with the brute-force GLS
values at the peer's estimates (the file's ``brute_force``): glmmTMB's SEs come
from the joint Hessian, which includes the variance parameters' uncertainty,
so they are not lme4's (nor ours) when the design is unbalanced.
"""
import numpy as np
import pytest

from structures_cases import FITS, best_peer, our_fit, residual_sds


@pytest.mark.parametrize("key", sorted(FITS))
def test_criterion_matches_or_beats_the_peers(key):
    fit, peer = our_fit(key), best_peer(FITS[key])
    assert fit.converged
    assert fit.objective <= peer["criterion"] + 1e-6
    assert fit.objective == pytest.approx(peer["criterion"], abs=1e-4)   # the same optimum, not another one


@pytest.mark.parametrize("key", sorted(FITS))
def test_estimates_match_the_best_peer(key):
    fit, peer = our_fit(key), best_peer(FITS[key])
    for name, value in peer["fixef"].items():
        assert fit.fixef[name] == pytest.approx(value, abs=1e-5 * max(1.0, abs(value)))
    for name, value in peer["brute_force"]["se"].items():
        assert fit.se[name] == pytest.approx(value, rel=1e-3)
    for term, ref in zip(fit.spec.terms, peer["terms"]):
        cov = fit.term_covariances()[fit.spec.terms.index(term)]
        sd = np.sqrt(np.diag(cov))
        np.testing.assert_allclose(sd, [ref["sd"][c] for c in ref["sd"]], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(cov / np.outer(sd, sd), np.array(ref["corr"]), atol=1e-3)
    levels = residual_sds(peer)
    np.testing.assert_allclose(fit.residual_sd.to_numpy(), list(levels.values()), rtol=1e-3)
    if fit.spec.sigma_by is not None:
        assert list(fit.residual_sd.index) == list(levels)


@pytest.mark.parametrize("key", [k for k in sorted(FITS) if any(
    "common_corr" in t for p in FITS[k]["peers"].values() for t in p["terms"])])
def test_common_correlation_is_a_parameter(key):
    fit, peer = our_fit(key), best_peer(FITS[key])
    ref = next(t for t in peer["terms"] if "common_corr" in t)["common_corr"]
    params = fit.variance_parameters()
    name = next(n for n in params.index if n.startswith(("cor|", "rho|")))
    assert params[name] == pytest.approx(ref, abs=1e-3)
