"""The side-by-side table: frequentist estimates and intervals beside posterior summaries.

For each parameter under the shared names:

* ``shift`` = (posterior median - estimate) / s, with s the frequentist se for
  fixed effects and the posterior sd for variance components (which have no se);
* ``overlap`` = length of the intersection / length of the union of the two intervals (1 when identical,
  0 when disjoint);
* ``flag`` names what a reader should look at: ``boundary`` (the frequentist fit
  puts an sd at 0 while the posterior keeps its mass away from 0: posterior median
  above a tenth of the posterior median of sigma), ``width`` (one interval
  more than 1.5 times the other), ``shift`` (``|shift| > 1``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FLAG_TEXT = {
    "boundary": "the frequentist fit puts this standard deviation at the boundary (0) while the posterior "
                "keeps its mass away from 0: the data cannot rule the variance out, and the prior decides "
                "how large it is",
    "width": "one interval is more than 1.5 times as wide as the other: the paradigms disagree on how much "
             "the data say about this parameter",
    "shift": "the posterior median is more than one standard error (or posterior sd) away from the "
             "frequentist estimate",
}


def interval_overlap(a_lo, a_hi, b_lo, b_hi) -> float:
    """Length of the intersection over the length of the union of two intervals (NaN if an end is not finite)."""
    if not all(np.isfinite([a_lo, a_hi, b_lo, b_hi])):
        return np.nan
    inter = max(0.0, min(a_hi, b_hi) - max(a_lo, b_lo))
    union = max(a_hi, b_hi) - min(a_lo, b_lo)
    return inter / union if union > 0 else 1.0


def comparison_table(freq_fit, bayes_fit, freq_ci: pd.DataFrame, level: float) -> pd.DataFrame:
    """One row per shared parameter name: the columns of :meth:`lmmcompare.Comparison.table` (see the module docstring)."""
    import arviz as az

    names = bayes_fit.parameter_names
    kinds = {r.label: r.kind for r in freq_fit.spec.parameters.rows}
    estimates = pd.concat([freq_fit.fixef, freq_fit.variance_parameters()])
    se = freq_fit.se
    post = bayes_fit.idata.posterior
    a = (1 - level) / 2
    diag = bayes_fit.diagnostics()
    sigma_median = float(np.median(post["sigma"].values))
    rows = []
    for name in names:
        draws = post[name].values.ravel()
        hdi = az.hdi(draws, hdi_prob=level)
        est = float(estimates[name])
        f_se = float(se[name]) if name in se.index else np.nan
        lo, hi = (float(v) for v in freq_ci.loc[name, ["lower", "upper"]])
        med, sd = float(np.median(draws)), float(draws.std(ddof=1))
        eti = np.quantile(draws, [a, 1 - a])
        scale = f_se if np.isfinite(f_se) else sd
        shift = (med - est) / scale if scale > 0 else np.nan
        flags = []
        if kinds[name] == "sd" and est <= 1e-8 * max(1.0, abs(med)) and med > 0.1 * sigma_median:
            flags.append("boundary")
        f_width, b_width = hi - lo, eti[1] - eti[0]
        if np.isfinite(f_width) and f_width > 0 and (b_width / f_width > 1.5 or f_width / b_width > 1.5):
            flags.append("width")
        if np.isfinite(shift) and abs(shift) > 1:
            flags.append("shift")
        rows.append({
            "estimate": est, "se": f_se, "lower": lo, "upper": hi, "interval": freq_ci.attrs.get("method", ""),
            "post_mean": float(draws.mean()), "post_median": med, "post_sd": sd,
            "eti_lower": eti[0], "eti_upper": eti[1], "hdi_lower": hdi[0], "hdi_upper": hdi[1],
            "r_hat": float(diag.loc[name, "r_hat"]), "ess_bulk": float(diag.loc[name, "ess_bulk"]),
            "shift": shift, "overlap": interval_overlap(lo, hi, eti[0], eti[1]), "flag": ",".join(flags),
        })
    return pd.DataFrame(rows, index=pd.Index(names, name="parameter"))
