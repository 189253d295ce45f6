"""Pastes: nested random effects, strength ~ 1 + (1 | batch/cask).

Shows: the batch variance is small next to the cask-within-batch variance; the
posterior keeps more mass on a larger batch sd than the profile interval suggests.
Sampled with the marginal parameterisation: with a batch sd that may well be
near 0, the noncentred form had 75 divergent transitions in 4,000 (seed 1).
Run: python3 case_studies/pastes.py
"""
from _common import interval_finding, run

if __name__ == "__main__":
    cmp = run("pastes", "strength ~ 1 + (1 | batch/cask)", "Pastes", parameterization="marginal")
    print(f"\nFINDING: {interval_finding(cmp, 'sd_(Intercept)|batch')}")
