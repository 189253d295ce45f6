"""Dyestuff2: a singular REML fit, Yield ~ 1 + (1 | Batch).

Shows: REML puts the batch sd at exactly 0 (the boundary), while the posterior
keeps its mass away from 0: the 'boundary' flag and what it means.
Run: python3 case_studies/dyestuff2.py
"""
from _common import run

if __name__ == "__main__":
    cmp = run("dyestuff2", "Yield ~ 1 + (1 | Batch)", "Dyestuff2", parameterization="marginal")
    t = cmp.table()
    row = t.loc["sd_(Intercept)|Batch"]
    print(f"\nFINDING: REML sd of Batch = {row.estimate:.2f} (singular: {cmp.freq.singular}), profile interval "
          f"[{row.lower:.2f}, {row.upper:.2f}]; posterior median {row.post_median:.2f} "
          f"[{row.eti_lower:.2f}, {row.eti_upper:.2f}]; flag: {row.flag}")
