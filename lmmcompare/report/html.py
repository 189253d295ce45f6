"""A self-contained HTML report: tables, flags in plain words, embedded figures, versions."""
from __future__ import annotations

import base64
import html
import io
import platform
from importlib import metadata

from ..spec.inputs import describe_inputs
from .markdown import TABLE_COLUMNS

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1240px; margin: 2em auto; padding: 0 1em; color: #222; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.flag { color: #b00; font-weight: bold; } figure { margin: 1.5em 0; }
figcaption { font-weight: bold; margin-bottom: 0.3em; } img { max-width: 100%; } code { background: #f4f4f4; }
"""


def figure_html(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    # the caption above its figure: below it, it reads as the title of the next one
    return f"<figure><figcaption>{html.escape(alt)}</figcaption>" \
           f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/></figure>'


def table_html(frame, float_format="{:.4g}") -> str:
    """The frame as an HTML table, in a box that scrolls sideways when the page is narrower than the table."""
    body = frame.to_html(float_format=lambda v: float_format.format(v), na_rep="", border=0, escape=True)
    return f"<div class='wide'>{body}</div>"


def software_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("lmmcompare", "numpy", "scipy", "pandas", "formulaic", "pymc", "pytensor", "arviz", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


TRACE_PARAMETERS = 8   # more would make the report's trace plot thousands of pixels tall

MARGINAL_NOTE = (" (the default: the random effects are integrated out of the likelihood, so the sampler moves on "
                 "the fixed effects, sds, correlations and sigma alone, with no funnel; each draw's random "
                 "effects are then drawn from their exact Gaussian conditional)")


def standalone_page(path, title: str, body: str) -> str:
    """Write ``body`` (HTML) as a self-contained page with the report's style; returns the path."""
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}"
            f"<h2>Software</h2>{_versions_html()}</body></html>")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return str(path)


def _versions_html() -> str:
    return "<ul>" + "".join(f"<li>{html.escape(k)} {html.escape(v)}</li>" for k, v in software_versions().items()) \
        + "</ul>"


def write_report(cmp, path, ci: str = "profile", level: float = 0.95, studies=(), derived=()) -> str:
    """Write the comparison report; ``studies`` (coverage or SBC results) add their sections, and
    ``derived`` ``(title, table, note)`` sections of derived quantities side by side."""
    from ..plots import caterpillar_plot, forest_plot, plot_profile, ppc_plot, shrinkage_plot, trace_plot

    spec = cmp.spec
    table = cmp.table(ci, level)
    flags = cmp.flags(ci, level)
    post = cmp.bayes.idata.posterior
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>lmmcompare: {html.escape(spec.formula)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(spec.formula)}</h1>",
             "<h2>Model and data</h2><ul>",
             f"<li>{spec.n} observations of <code>{html.escape(spec.response)}</code>"
             + (f" ({spec.n_dropped} rows with missing values or zero weight dropped)" if spec.n_dropped else "")
             + "</li>",
             f"<li>fixed effects: {html.escape(', '.join(spec.fixed_names))}</li>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in describe_inputs(spec)]
    for t in spec.terms:
        written = t.text if t.structured else f"({' + '.join(t.columns)} | {t.group})"
        columns = f", columns {', '.join(t.columns)}" if t.structured else ""
        parts.append(f"<li>random term <code>{html.escape(written)}</code>: {t.n_levels} levels"
                     f"{html.escape(columns)}</li>")
    parts.append(f"<li>frequentist: {'REML' if cmp.freq.reml else 'ML'}, criterion {cmp.freq.objective:.4f}, "
                 f"{cmp.freq.n_evals} evaluations, {'converged' if cmp.freq.converged else 'NOT converged'}"
                 f"{', singular fit' if cmp.freq.singular else ''}</li>")
    parts.append(f"<li>Bayesian: {cmp.bayes.sampled_as} parameterisation, {cmp.bayes.sampler} sampler, "
                 f"{post.sizes['chain']} chains x {post.sizes['draw']} draws, {cmp.bayes.seconds:.1f} s"
                 f"{MARGINAL_NOTE if cmp.bayes.parameterization == 'marginal' else ''}</li></ul>")
    parts.append(f"<h2>Side by side ({int(level * 100)}% intervals; frequentist: {html.escape(ci)})</h2>")
    parts.append(table_html(table[TABLE_COLUMNS]))
    parts.append("<h2>Flags</h2>")
    if flags:
        parts.append("<ul>" + "".join(f"<li><span class='flag'>{html.escape(f)}</span> on <code>{html.escape(n)}"
                                      f"</code>: {html.escape(text)}.</li>" for n, f, text in flags) + "</ul>")
    else:
        parts.append("<p>No flags: estimates, intervals and posteriors agree on every parameter.</p>")
    for title, frame, note in derived:
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>" + table_html(frame))
    parts.append("<h2>Figures</h2>")
    parts.append(figure_html(forest_plot(cmp, ci, level), "Frequentist and Bayesian intervals per parameter"))
    parts.append(figure_html(caterpillar_plot(cmp), "Random effects: conditional modes and posterior means"))
    parts.append(figure_html(shrinkage_plot(cmp), "Shrinkage of per-group estimates"))
    parts.append(figure_html(ppc_plot(cmp, seed=0), "Posterior predictive density check"))
    if ci == "profile":
        parts.append(figure_html(plot_profile(cmp.freq.profile(level=level), level), "Profile zeta plots"))
    shown = min(TRACE_PARAMETERS, len(cmp.bayes.parameter_names))
    parts.append(figure_html(trace_plot(cmp.bayes, max_parameters=TRACE_PARAMETERS),
                             "Trace plots" + ("" if shown == len(cmp.bayes.parameter_names) else
                                              f" of the {shown} parameters with the smallest bulk ESS")))
    parts.append("<h2>Diagnostics and checks</h2>")
    diag = cmp.bayes.diagnostics()
    parts.append(f"<p>{_sampler_effort(diag.attrs)}</p>")
    parts.append(table_html(diag))
    parts.append("<h3>Sampler, per chain</h3>" + table_html(cmp.bayes.sampler_stats()))
    parts.append("<h3>Posterior predictive test statistics</h3>" + table_html(cmp.ppc(seed=0)))
    fit_stats = cmp.fit_statistics()
    parts.append("<h3>Model fit</h3>" + fit_stats.to_html(na_rep="", border=0)
                 + f"<p>PSIS-LOO: {html.escape(fit_stats.attrs['pareto_note'])}</p>")
    parts.append("<h3>Priors</h3>" + cmp.bayes.prior_summary().to_html(index=False, border=0))
    parts += [study.html_section() for study in studies]
    parts.append("<h2>Reproduce</h2><ul>")
    parts.append(f"<li>seed: {html.escape(str(cmp.bayes.seed))}; sampler {cmp.bayes.sampler}; "
                 f"parameterization {cmp.bayes.sampled_as}</li>")
    parts += [f"<li>{k} {html.escape(v)}</li>" for k, v in software_versions().items()]
    parts.append("</ul></body></html>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return str(path)


def _sampler_effort(attrs) -> str:
    """How hard the sampler worked: NUTS's divergences, tree depth and gradients per draw, or the independence
    step's acceptance (:mod:`lmmcompare.bayesian.independence`)."""
    if "moves" in attrs:
        return (f"Independence Metropolis-Hastings from the Laplace approximation (one log density per draw, "
                f"no gradient): mean acceptance probability {attrs['acceptance']:.2f}, "
                f"{100 * attrs['moves']:.0f}% of draws moved.")
    text = f"Divergent transitions: {attrs.get('divergences', 0)}."
    if "gradients_per_draw" not in attrs:
        return text
    text += (f" NUTS took {attrs['gradients_per_draw']:.1f} gradient evaluations per draw "
             f"(mean tree depth {attrs.get('mean_tree_depth', float('nan')):.1f}, "
             f"deepest {attrs.get('max_tree_depth', 0)})")
    hits = attrs.get("max_depth_hits", 0)
    return text + (f"; {hits} draws hit the maximum depth." if hits else "; no tree hit the maximum depth.")
