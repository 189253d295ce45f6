"""The result of profiling: zeta traces, and intervals read off them (lme4's ``profile``, ``confint``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats


@dataclass(frozen=True)
class Profile:
    """Profile traces and the ML fit they start from.

    Attributes
    ----------
    traces : dict of name -> DataFrame
        Columns ``value`` and ``zeta``, sorted by value, for each parameter.
    estimates : Series
        ML estimates (sd/cor, sigma, fixed effects) at zeta = 0.
    lower, upper : Series
        Bounds of each parameter (0 for sds and sigma, -1/1 for correlations).
    """

    traces: dict
    estimates: pd.Series
    lower: pd.Series
    upper: pd.Series
    level: float = 0.95
    intervals: pd.DataFrame | None = None

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Profile intervals: exact roots at the profiled ``level``, else from the traces."""
        if self.intervals is not None and np.isclose(level, self.level):
            return self.intervals
        z = scipy.stats.norm.ppf(0.5 + level / 2)
        rows = {}
        for name, tr in self.traces.items():
            rows[name] = (trace_crossing(tr, -z, self.lower[name]), trace_crossing(tr, z, self.upper[name]))
        return pd.DataFrame(rows, index=["lower", "upper"]).T


def trace_crossing(trace: pd.DataFrame, target: float, bound: float) -> float:
    """Parameter value where the (monotone) trace crosses ``target``; the bound if it never does."""
    v, zeta = trace["value"].to_numpy(), trace["zeta"].to_numpy()
    if target < 0:
        below = np.flatnonzero(zeta <= target)
        if below.size == 0:
            return bound
        i = below[-1]
    else:
        above = np.flatnonzero(zeta >= target)
        if above.size == 0:
            return bound
        i = above[0] - 1
    x0, x1, z0, z1 = v[i], v[i + 1], zeta[i], zeta[i + 1]
    return float(x0 + (target - z0) * (x1 - x0) / (z1 - z0)) if z1 != z0 else float(x0)
