"""One model, two paradigms: the Comparison object."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..archive import save_archive
from ..arguments import check_choice, check_level, check_seed
from ..errors import ArgumentError
from ..freq.inference.confint import METHODS
from ..freq.result import LmerFit
from ..report.html import write_report
from ..report.markdown import comparison_markdown
from .checks import fit_statistics, ppc_statistics
from .derived import emmeans_table, pairs_table, predict_table, r2_table
from .matching import spec_difference
from .persist import comparison_content
from .ranef import ranef_table, shrinkage_table
from .table import FLAG_TEXT, comparison_table


@dataclass(eq=False)
class Comparison:
    """An :class:`LmerFit` and a :class:`BayesFit` of the same spec, side by side.

    Intervals are computed once per (method, level, and for ``boot`` nsim and an
    integer or None seed) and kept (profiling and bootstrapping are not free);
    everything else is derived on demand.
    """

    freq: object
    bayes: object
    _intervals: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        from ..bayesian.result import BayesFit

        if not isinstance(self.freq, LmerFit) or not isinstance(self.bayes, BayesFit):
            raise ArgumentError("compare(lmer_fit, bayes_fit) takes an LmerFit and a BayesFit, in that order")
        a, b = self.freq.spec, self.bayes.spec
        differs = spec_difference(a, b)
        if differs:
            raise ArgumentError(f"the two fits are not of the same model and data: their {differs} differ "
                                f"({a.formula!r} on {a.n} rows vs {b.formula!r} on {b.n} rows); fit both to one "
                                "spec, e.g. with fit_both(formula, data) or lmer(spec) and bayes(spec)")

    @property
    def spec(self):
        return self.freq.spec

    def intervals(self, ci: str = "profile", level: float = 0.95, nsim: int = 500, seed=None, n_jobs: int = 1,
                  progress: bool = False) -> pd.DataFrame:
        """The frequentist fit's ``confint(method=ci, ...)``, kept for the next call with the same settings.

        ``nsim`` and ``seed`` matter to ``boot`` only; a ``Generator`` seed gives new draws every
        call, so its intervals are not kept.
        """

        ci = check_choice("ci", ci.lower() if isinstance(ci, str) else ci, METHODS)
        check_level("level", level)
        check_seed("seed", seed)
        key = (ci, level) + ((nsim, seed) if ci == "boot" else ())
        kept = ci != "boot" or seed is None or isinstance(seed, (int, np.integer))
        if not kept or key not in self._intervals:
            out = self.freq.confint(method=ci, level=level, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)
            if not kept:
                return out
            self._intervals[key] = out
        return self._intervals[key]

    def table(self, ci: str = "profile", level: float = 0.95, **options) -> pd.DataFrame:
        """One row per parameter: frequentist estimate, se, interval; posterior summaries; shift, overlap, flag.

        ``options`` (``nsim``, ``seed``, ``n_jobs``, ``progress``) go to :meth:`intervals`.
        """
        return comparison_table(self.freq, self.bayes, self.intervals(ci, level, **options), level)

    def ranef_table(self) -> pd.DataFrame:
        """Conditional modes and SDs beside posterior means and SDs, per group level and coefficient."""
        return ranef_table(self.freq, self.bayes)

    def shrinkage(self) -> pd.DataFrame:
        """Per level of the first term: per-group OLS, REML BLUP and posterior mean (:func:`.ranef.shrinkage_table`)."""
        return shrinkage_table(self.freq, self.bayes)

    def ppc(self, seed=None) -> pd.DataFrame:
        """Posterior predictive test statistics with Bayesian p-values."""
        return ppc_statistics(self.bayes, seed=seed)

    def fit_statistics(self) -> pd.DataFrame:
        """logLik/AIC/BIC beside elpd_loo, p_loo and Pareto-k warnings."""
        return fit_statistics(self.freq, self.bayes)

    def emmeans(self, specs, by=None, at=None, ddf: str = "kenward-roger", level: float = 0.95,
                weights: str = "equal") -> pd.DataFrame:
        """Estimated marginal means of ``specs`` from both fits (:func:`lmmcompare.emmeans`), side by side
        with the ``shift``, ``overlap`` and ``flag`` columns of :meth:`table`."""
        return emmeans_table(self.freq, self.bayes, specs, level, by=by, at=at, ddf=ddf, weights=weights)

    def pairs(self, specs, adjust: str = "tukey", by=None, at=None, ddf: str = "kenward-roger",
              level: float = 0.95, weights: str = "equal") -> pd.DataFrame:
        """Pairwise differences of the marginal means from both fits: frequentist estimates, adjusted
        p-values and intervals (emmeans' ``pairs``) beside posterior ones with the probability of direction."""
        return pairs_table(self.freq, self.bayes, specs, adjust, level, by=by, at=at, ddf=ddf, weights=weights)

    def predict(self, newdata=None, re: bool = True, allow_new_levels: bool = False, level: float = 0.95,
                seed=None) -> pd.DataFrame:
        """Predictions from both fits, side by side: the frequentist fit, se and confidence interval
        (:meth:`LmerFit.predict`) beside the posterior of the expected value (:meth:`BayesFit.predict`)."""
        return predict_table(self.freq, self.bayes, newdata, re, allow_new_levels, level, seed)

    def r2(self, level: float = 0.95) -> pd.DataFrame:
        """R² and ICC from both fits (:func:`lmmcompare.r2`, :func:`lmmcompare.icc`), side by side, and the
        Bayesian R² of Gelman et al. (2019)."""
        return r2_table(self.freq, self.bayes, level)

    def flags(self, ci: str = "profile", level: float = 0.95, **options) -> list[tuple[str, str, str]]:
        """``(parameter, flag, explanation)`` for every flag in the table (``options`` as :meth:`table`)."""

        out = []
        for name, flag in self.table(ci, level, **options)["flag"].items():
            for f in filter(None, flag.split(",")):
                out.append((name, f, FLAG_TEXT[f]))
        return out

    def to_markdown(self, ci: str = "profile", level: float = 0.95, emmeans=None, r2: bool = False,
                    **options) -> str:
        """The table and flags as GitHub-flavoured Markdown (``options`` as :meth:`table`); with
        ``emmeans`` (a specs of :func:`lmmcompare.emmeans`) the marginal means and their pairs too, and
        with ``r2`` the R² and ICC table (:meth:`r2`)."""

        return comparison_markdown(self, ci, level, derived=self._derived_sections(emmeans, r2, level), **options)

    def _derived_sections(self, emmeans, r2: bool, level) -> list:
        out = []
        if r2:
            out.append(("R² and intraclass correlation", self.r2(level),
                        "Nakagawa & Schielzeth's R² (Johnson's random-slope variance) and the ICC, as R's "
                        "performance: the frequentist value at the estimates beside its posterior (computed on "
                        "every draw); Bayes R2 is Gelman et al.'s (brms' bayes_R2), which has no frequentist twin."))
        if emmeans is None:
            return out
        return out + [(f"Estimated marginal means of {emmeans}", self.emmeans(emmeans, level=level),
                 "emmeans' reference grid (other factors averaged with equal weights, covariates at their means); "
                 "frequentist: Kenward-Roger se, df and intervals; Bayesian: the same grid on every posterior draw."),
                (f"Pairwise differences of {emmeans}", self.pairs(emmeans, level=level),
                 "Frequentist p-values and intervals with Tukey's adjustment; pd is the posterior probability of "
                 "the difference's sign (direction).")]

    def report(self, path, ci: str = "profile", level: float = 0.95, studies=(), emmeans=None,
               r2: bool = False) -> str:
        """Write one self-contained HTML file (images embedded); returns the path.

        ``studies``: results of :func:`lmmcompare.validate.coverage` or
        :func:`lmmcompare.validate.sbc` to include as sections of the report;
        ``emmeans``: a specs (``"recipe"``) whose marginal means and pairwise
        differences the report shows side by side (:meth:`emmeans`, :meth:`pairs`);
        ``r2``: add the R² and ICC table (:meth:`r2`).
        """

        studies = tuple(studies)
        bad = [type(s).__name__ for s in studies if not hasattr(s, "html_section")]
        if bad:
            raise ArgumentError(f"studies must be CoverageResult or SBCResult objects, got {', '.join(bad)}")
        return write_report(self, path, ci, level, studies=studies, derived=self._derived_sections(emmeans, r2, level))

    def save(self, path) -> str:
        """Write both fits and the intervals computed so far to one file; :func:`lmmcompare.load` reads it.

        A zip archive of data only (JSON, NPY, netCDF; never a pickle): loading needs no
        refit, no sampling and no compilation, and runs no code from the file.  Returns the path written.
        """
        return save_archive(path, "Comparison", lambda writer: comparison_content(writer, self))


def compare(lmer_fit, bayes_fit) -> Comparison:
    """Put a frequentist and a Bayesian fit of the same spec side by side."""
    return Comparison(lmer_fit, bayes_fit)
