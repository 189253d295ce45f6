"""Pastes: nested random effects, strength ~ 1 + (1 | batch/cask).

Shows: the batch variance is small next to the cask-within-batch variance; the
posterior keeps more mass on a larger batch sd than the profile interval suggests.
Run: python3 case_studies/pastes.py
"""
from _common import run

if __name__ == "__main__":
    cmp = run("pastes", "strength ~ 1 + (1 | batch/cask)", "Pastes")
    t = cmp.table()
    row = t.loc["sd_(Intercept)|batch"]
    print(f"\nFINDING: sd of batch: REML {row.estimate:.2f} [{row.lower:.2f}, {row.upper:.2f}] vs posterior median "
          f"{row.post_median:.2f} [{row.eti_lower:.2f}, {row.eti_upper:.2f}]")
