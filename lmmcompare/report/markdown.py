"""Markdown rendering of a Comparison (for notebooks and READMEs)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..spec.inputs import describe_inputs

TABLE_COLUMNS = ["estimate", "se", "lower", "upper", "post_median", "post_sd", "eti_lower", "eti_upper",
                 "r_hat", "ess_bulk", "shift", "overlap", "flag"]


def _fmt(v):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer() and abs(v) > 100):
        return f"{v:.0f}"
    return f"{v:.4g}"


def _cell(text: str) -> str:
    """Text of one table cell: ``|`` escaped (GFM would read it as a cell border, as in ``sd_(Intercept)|g``)."""
    return text.replace("\\", "\\\\").replace("|", "\\|")


def frame_markdown(frame: pd.DataFrame, index_name: str = "") -> str:
    """A GitHub-flavoured Markdown table of ``frame``, its index as the first column."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(_cell(str(c)) for c in [index_name, *cols]) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([_cell(str(idx))] + [_cell(_fmt(row[c])) for c in cols]) + " |")
    return "\n".join(lines)


def comparison_markdown(cmp, ci: str = "profile", level: float = 0.95, derived=(), **options) -> str:
    """The comparison table and its flags in Markdown (``options`` go to :meth:`~lmmcompare.Comparison.table`);
    ``derived`` ``(title, table, note)`` sections follow."""
    table = cmp.table(ci, level, **options)
    spec = cmp.spec
    lines = [f"### `{spec.formula}`", "",  # a code span: the formula's * and _ are not emphasis
             f"{spec.n} observations; " + ", ".join(f"{g}: {f.n_levels} levels" for g, f in spec.factors.items())
             + f". Frequentist: {'REML' if cmp.freq.reml else 'ML'}, {ci} intervals; Bayesian: "
               f"{cmp.bayes.sampled_as} ({cmp.bayes.sampler}); {int(level * 100)}% intervals."
             + "".join(f" {line[0].upper()}{line[1:]}." for line in describe_inputs(spec)), "",
             frame_markdown(table[TABLE_COLUMNS], "parameter"), ""]
    flags = cmp.flags(ci, level, **options)
    if flags:
        lines.append("**Flags**")
        lines += [f"- `{name}` ({flag}): {text}" for name, flag, text in flags]
    else:
        lines.append("No flags: the two paradigms agree on every parameter.")
    for title, frame, note in derived:
        lines += ["", f"**{title}**", "", note, "", frame_markdown(frame, " / ".join(map(str, frame.index.names))
                                                                  if frame.index.names[0] else "")]
    return "\n".join(lines)
