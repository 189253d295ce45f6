"""Profile zeta plots (lme4's ``xyplot(profile(fit))``)."""
from __future__ import annotations

import numpy as np


def plot_profile(profile, level: float = 0.95, ncols: int | None = None):
    """One panel per parameter: zeta against the parameter, with the interval ends marked.

    ``ncols`` defaults to 3, or 5 for more than 12 parameters (smaller panels), so a model
    with many fixed effects does not give a figure thousands of pixels tall.

    Parameters
    ----------
    profile : Profile
        From ``fit.profile()``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    names = list(profile.traces)
    small = len(names) > 12
    ncols = ncols or (5 if small else 3)
    nrows = int(np.ceil(len(names) / ncols))
    width, height = (2.5, 2.0) if small else (3.2, 2.6)
    fig, axes = plt.subplots(nrows, min(ncols, len(names)), figsize=(width * min(ncols, len(names)), height * nrows),
                             squeeze=False)
    z = norm.ppf(0.5 + level / 2)
    ci = profile.confint(level)
    for ax, name in zip(axes.ravel(), names):
        tr = profile.traces[name]
        ax.plot(tr["value"], tr["zeta"], "-o", ms=3, color="C0")
        ax.axhline(0, color="grey", lw=0.5)
        for zz in (-z, z):
            ax.axhline(zz, color="grey", lw=0.5, ls="--")
        for end in ci.loc[name]:
            if np.isfinite(end):
                ax.axvline(end, color="C3", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(r"$\zeta$")
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
