"""lme4-style text display of an :class:`~lmmcompare.LmerFit`."""
from __future__ import annotations

import numpy as np


def _fmt_table(rows: list[list[str]], align_left: int = 1) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) if i < align_left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append(" " + " ".join(cells).rstrip())
    return out


def _signif(x: float, digits: int = 5) -> str:
    if not np.isfinite(x):
        return "NaN"
    return f"{x:.{digits}g}" if abs(x) >= 1e-4 or x == 0 else f"{x:.{digits - 1}e}"


def _correlation_cells(term, cov, sd) -> list[str]:
    """The Corr column of a term's rows: lme4's lower triangle for ``us``; a structured term's kind
    on its first row, with its common correlation (``cs``) or rho (``ar1``) once."""
    structure = term.structure
    if structure.unstructured:
        cells = []
        for i in range(term.p):
            cells.append(" ".join(f"{cov[i, j] / (sd[i] * sd[j]):.2f}" if sd[i] * sd[j] > 0 else "NaN"
                                  for j in range(i)))
        return cells
    first = f"({structure.kind}{', hom' if structure.hom else ''})"
    if structure.has_correlation(term.p):
        name = "rho" if structure.kind == "ar1" else "cor"
        first += f" {name} = {cov[1, 0] / (sd[0] * sd[1]):.2f}" if sd[0] * sd[1] > 0 else f" {name} = NaN"
    return [first] + [""] * (term.p - 1)


def random_effects_lines(fit) -> list[str]:
    """lme4's ``Random effects:`` table; structured terms say their kind, ``sigma_by`` gives a residual row per level."""
    header = ["Groups", "Name", "Variance", "Std.Dev."]
    any_corr = any(t.p > 1 for t in fit.spec.terms)
    rows = [header + (["Corr"] if any_corr else [])]
    for t, cov in zip(fit.spec.terms, fit.term_covariances()):
        sd = np.sqrt(np.diag(cov))
        cells = _correlation_cells(t, cov, sd)
        for i, col in enumerate(t.columns):
            row = [t.varcorr_group if i == 0 else "", col, _signif(cov[i, i], 5), _signif(sd[i], 5)]
            rows.append(row + ([cells[i]] if any_corr else []))
    by = fit.spec.sigma_by
    residual = fit.residual_sd
    for k, (level, value) in enumerate(residual.items()):
        name = "" if by is None else f"{by.name}: {level}"
        rows.append(["Residual" if k == 0 else "", name, _signif(value**2, 5), _signif(value, 5)]
                    + ([""] if any_corr else []))
    return _fmt_table(rows, align_left=2)


def fixed_effects_lines(fit) -> list[str]:
    est, se = fit.fixef, fit.se
    tval = est / se
    rows = [["", "Estimate", "Std. Error", "t value"]]
    for name in est.index:
        rows.append([name, f"{est[name]:.4f}", f"{se[name]:.4f}", f"{tval[name]:.3f}"])
    return _fmt_table(rows)


def correlation_lines(fit) -> list[str]:
    names = fit.spec.fixed_names
    if len(names) < 2:
        return []
    se = np.sqrt(np.diag(fit.vcov_beta))
    corr = fit.vcov_beta / np.outer(se, se)
    short = [n.replace("(Intercept)", "(Intr)")[:6] for n in names]
    rows = [[""] + short[:-1]]
    for i in range(1, len(names)):
        rows.append([names[i]] + [f"{corr[i, j]:.3f}" for j in range(i)] + [""] * (len(names) - 1 - i))
    return ["", "Correlation of Fixed Effects:"] + [line[1:] for line in _fmt_table(rows)]


def summary_text(fit) -> str:
    spec = fit.spec
    kind = "REML" if fit.reml else "maximum likelihood "
    lines = [f"Linear mixed model fit by {kind} ['lmerMod']", f"Formula: {spec.formula}"]
    if spec.data_name:
        lines.append(f"   Data: {spec.data_name}")
    lines.append("")
    if fit.reml:
        lines.append(f"REML criterion at convergence: {fit.objective:.1f}")
    else:
        vals = [f"{fit.aic:.1f}", f"{fit.bic:.1f}", f"{fit.loglik:.1f}", f"{fit.objective:.1f}", str(fit.df_resid)]
        heads = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        w = max(len(v) for v in vals + heads) + 1
        lines.append("".join(h.rjust(w) for h in heads))
        lines.append("".join(v.rjust(w) for v in vals))
    scaled = fit.residuals("pearson") / fit.sigma
    q = np.quantile(scaled, [0, 0.25, 0.5, 0.75, 1])
    lines += ["", "Scaled residuals: ",
              "".join(h.rjust(8) for h in ["Min", "1Q", "Median", "3Q", "Max"]),
              "".join(f"{v:.4f}".rjust(8) for v in q), "", "Random effects:"]
    lines += random_effects_lines(fit)
    groups = ", ".join(f"{name}, {f.n_levels}" for name, f in spec.factors.items())
    lines.append(f"Number of obs: {spec.n}, groups:  {groups}")
    if spec.p:  # lme4's summary has no fixed-effects section for y ~ 0 + (x | g)
        lines += ["", "Fixed effects:"] + [line[1:] for line in fixed_effects_lines(fit)]
    lines += correlation_lines(fit)
    if spec.dropped_fixed:
        lines += ["", f"fixed-effect model matrix is rank deficient so dropping {len(spec.dropped_fixed)} "
                      f"column(s): {', '.join(spec.dropped_fixed)}"]
    if fit.singular:
        lines += ["", "boundary (singular) fit: see help('isSingular')"]
    if not fit.converged:
        lines += ["", f"optimizer ({fit.opt.method}) convergence code: 1 ({fit.opt.message})"]
    return "\n".join(lines)
