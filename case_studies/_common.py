"""Shared runner for the case studies: fit both paradigms, print the table and flags, write the report."""
from __future__ import annotations

import pathlib
import sys
import warnings

import lmmcompare as lc

OUT = pathlib.Path(__file__).parent / "out"


def run(name: str, formula: str, data: str, reml: bool = True, ci: str = "profile", report_options=None,
        **bayes_options):
    OUT.mkdir(exist_ok=True)
    options = dict(draws=1000, tune=1000, chains=4, seed=20261125, progressbar=True)
    options.update(bayes_options)
    if "--quick" in sys.argv:
        options.update(draws=300, tune=300, chains=2)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        cmp = lc.fit_both(formula, data, reml=reml, **options)
    print(cmp.freq.summary())
    print()
    report_options = report_options or {}
    print(cmp.to_markdown(ci=ci, **report_options))
    path = cmp.report(OUT / f"{name}.html", ci=ci, **report_options)
    print(f"\nreport: {path}")
    return cmp


def interval_finding(cmp, name: str) -> str:
    """'REML est [lo, hi] vs posterior median med [lo, hi]' for one parameter of the table."""
    row = cmp.table().loc[name]
    return (f"{name}: REML {row.estimate:.2f} [{row.lower:.2f}, {row.upper:.2f}] vs posterior median "
            f"{row.post_median:.2f} [{row.eti_lower:.2f}, {row.eti_upper:.2f}]")
