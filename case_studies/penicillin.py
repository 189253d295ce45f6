"""Penicillin: fully crossed random effects, diameter ~ 1 + (1 | plate) + (1 | sample).

Shows: with only 6 samples the sample sd is poorly determined; the profile
interval and the posterior (noncentered parameterisation) both say so, in different ways.
Run: python3 case_studies/penicillin.py
"""
from _common import run

if __name__ == "__main__":
    cmp = run("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")
    t = cmp.table()
    row = t.loc["sd_(Intercept)|sample"]
    print(f"\nFINDING: sd of sample: REML {row.estimate:.2f} [{row.lower:.2f}, {row.upper:.2f}] vs posterior "
          f"median {row.post_median:.2f} [{row.eti_lower:.2f}, {row.eti_upper:.2f}]; flags: {t['flag'].to_dict()}")
