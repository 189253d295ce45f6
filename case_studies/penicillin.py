"""Penicillin: fully crossed random effects, diameter ~ 1 + (1 | plate) + (1 | sample).

Shows: with only 6 samples the sample sd is poorly determined; the profile
interval and the posterior both say so, in different ways.  The default
parameterisation ("auto") samples it centred: the 24 plates (6 rows each) and
6 samples (24 rows each) are pinned down by the data, and the noncentred form
had 1-4 divergent transitions in 4,000 on every seed tried.
Run: python3 case_studies/penicillin.py
"""
from _common import interval_finding, run

if __name__ == "__main__":
    cmp = run("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")
    flags = {k: v for k, v in cmp.table()["flag"].items() if v}
    print(f"\nFINDING: {interval_finding(cmp, 'sd_(Intercept)|sample')}; flags: {flags or 'none'}")
