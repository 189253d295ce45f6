"""Coverage of interval methods, by simulation from a fitted model.

Each replicate simulates a response from the fit (new random effects, new
noise: :meth:`LmerFit.simulate`), refits both paradigms on it and records,
for every parameter and method, the interval and whether it holds the value
the data were simulated from.  Replicates are seeded from one
``SeedSequence``, so a study gives the same numbers for any ``n_jobs``, any
backend, and after being interrupted and resumed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..arguments import check_bool, check_int, check_level, check_n_jobs, check_seed, shown
from ..errors import ArgumentError
from ..freq import lmer
from ..freq.result import LmerFit
from ..progress import Progress
from ..report.html import figure_html, standalone_page, table_html

METHODS = ("wald", "profile", "boot", "bayes")
BAYES_DEFAULTS = {"parameterization": "marginal", "draws": 500, "tune": 500, "chains": 2}
BAYES_KEYS = {"parameterization", "draws", "tune", "chains", "priors", "target_accept", "sampler"}
_COLUMNS = ["replicate", "method", "parameter", "truth", "lower", "upper", "covered", "width", "singular", "error"]


def _check_methods(methods) -> tuple:
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise ArgumentError(f"methods must be a non-empty subset of {', '.join(METHODS)}, got {shown(methods)}")
    return methods


_REFITTERS: dict = {}   # per process: compiled Bayesian models, reused by every replicate of a study


def _refitter(spec, bayes_options):
    """The study's compiled Bayesian model (priors scaled to the fitted data, fixed over replicates)."""

    from ..bayesian.refit import Refitter

    opts = {k: v for k, v in bayes_options.items() if k not in ("draws", "tune", "chains")}
    digest = hashlib.sha1(spec.X.tobytes() + spec.y.tobytes() + spec.Z.indices.tobytes() + spec.Z.data.tobytes())
    key = (spec.formula, digest.hexdigest(), repr(sorted(opts.items())))
    if key not in _REFITTERS:
        _REFITTERS.clear()
        _REFITTERS[key] = Refitter(spec, **opts)
    return _REFITTERS[key]


def _intervals(refit, spec, original, method, level, boot_nsim, bayes_options, seed) -> pd.DataFrame:
    if method != "bayes":
        return refit.confint(method, level=level, nsim=boot_nsim, seed=seed, progress=False)
    sizes = {k: bayes_options[k] for k in ("draws", "tune", "chains")}
    post = _refitter(original, bayes_options).fit(spec.y, seed=seed, **sizes).idata.posterior
    a = (1 - level) / 2
    names = [n for n in post.data_vars if post[n].dims == ("chain", "draw")]
    q = {n: np.quantile(post[n].values, [a, 1 - a]) for n in names}
    return pd.DataFrame(q, index=["lower", "upper"]).T


def _replicate(fit, r, seed, methods, level, boot_nsim, bayes_options, directory):

    sim_seed, boot_seed, bayes_seed = (int(s.generate_state(1)[0]) for s in seed.spawn(3))
    truth = pd.concat([fit.variance_parameters(), fit.fixef])
    spec = fit.spec.with_response(fit.simulate(1, seed=sim_seed)["sim_1"].to_numpy())
    with warnings.catch_warnings(), _quiet_pymc():
        warnings.simplefilter("ignore")   # singular refits and sampler warnings are recorded, not shown
        refit = lmer(spec, reml=fit.reml)
        rows = []
        for method in methods:
            method_seed = bayes_seed if method == "bayes" else boot_seed
            try:
                ci = _intervals(refit, spec, fit.spec, method, level, boot_nsim, bayes_options, method_seed)
                error = ""
            except Exception as exc:  # a failed method is counted in the table, not fatal to the study
                ci, error = pd.DataFrame(np.nan, index=truth.index, columns=["lower", "upper"]), repr(exc)
            for name, value in truth.items():
                lo, hi = (ci.loc[name, "lower"], ci.loc[name, "upper"]) if name in ci.index else (np.nan, np.nan)
                if not error and np.isnan(lo) and np.isnan(hi):
                    continue   # the method has no interval for this parameter (Wald for variance parameters)
                covered = float(lo <= value <= hi) if np.isfinite(lo) and np.isfinite(hi) else np.nan
                rows.append((r, method, name, value, lo, hi, covered, hi - lo, refit.singular, error))
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    if directory is not None:
        path = os.path.join(directory, f"replicate_{r:05d}.csv")
        frame.to_csv(path + ".tmp", index=False)
        os.replace(path + ".tmp", path)   # a replicate file exists only once it is complete
    return frame


@contextlib.contextmanager
def _quiet_pymc():
    """PyMC logs each sampler start at INFO; a study of hundreds of fits shows one progress bar instead."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True, eq=False)
class CoverageResult:
    """A coverage study: per-replicate intervals and their summary.

    Attributes
    ----------
    replicates : DataFrame
        One row per (replicate, method, parameter): truth, lower, upper,
        covered (1/0, NaN where the method failed), width, singular, error.
    settings : dict
        Formula, nsim, methods, level, seed and options of the study.
    """

    replicates: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Coverage, its Monte Carlo se, mean width and counts per (parameter, method)."""
        groups = self.replicates.groupby(["parameter", "method"], sort=False)
        out = groups.agg(truth=("truth", "first"), coverage=("covered", "mean"), mean_width=("width", "mean"),
                         n=("covered", "count"), n_failed=("covered", lambda c: int(c.isna().sum())))
        out["mc_se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["n"].clip(lower=1))
        return out[["truth", "coverage", "mc_se", "mean_width", "n", "n_failed"]]

    def plot(self):
        """Coverage per parameter and method with +-2 Monte Carlo se; a line at the nominal level."""
        import matplotlib.pyplot as plt

        table = self.table().reset_index()
        params = list(dict.fromkeys(table["parameter"]))
        methods = list(dict.fromkeys(table["method"]))
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(params) + 1.5))
        for k, method in enumerate(methods):
            part = table[table["method"] == method].set_index("parameter").reindex(params)
            ypos = np.arange(len(params)) + (k - (len(methods) - 1) / 2) * 0.15
            ax.errorbar(part["coverage"], ypos, xerr=2 * part["mc_se"], fmt="o", ms=4, capsize=2, label=method)
        ax.axvline(self.settings.get("level", 0.95), color="k", lw=0.8, ls="--")
        ax.set_yticks(np.arange(len(params)), params)
        ax.invert_yaxis()
        ax.set_xlabel(f"coverage ({self.settings.get('nsim', '?')} replicates, +-2 MC se)")
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        return fig

    def summary_text(self) -> str:
        """One sentence per method: the parameters whose coverage is off by more than 2 MC se.

        The Monte Carlo se is that of a method with exact coverage,
        ``sqrt(level (1 - level) / n)``, so the test has the right size even
        when the observed coverage is 0 or 1.
        """
        level = self.settings.get("level", 0.95)
        table = self.table().reset_index()
        lines = []
        for method, part in table.groupby("method", sort=False):
            nominal_se = np.sqrt(level * (1 - level) / part["n"].clip(lower=1))
            off = part[(part["coverage"] - level).abs() > 2 * nominal_se]
            if off.empty:
                lines.append(f"{method}: every parameter's coverage is within 2 Monte Carlo se of {level:.0%}.")
            else:
                what = ", ".join(f"{p} {c:.1%}" for p, c in zip(off["parameter"], off["coverage"]))
                lines.append(f"{method}: coverage differs from {level:.0%} by more than 2 MC se for {what}.")
        return "\n".join(lines)

    def html_section(self) -> str:
        """An HTML section (table, plot, findings) for :func:`lmmcompare.report.write_report`."""

        s = self.settings
        return (f"<h2>Coverage study</h2><p>{s.get('nsim')} data sets simulated from the fit of "
                f"<code>{s.get('formula')}</code>, seed {s.get('seed')}, nominal level {s.get('level')}.</p>"
                + "".join(f"<p>{line}</p>" for line in self.summary_text().splitlines())
                + table_html(self.table()) + figure_html(self.plot(), "coverage by parameter and method"))

    def report(self, path) -> str:
        """Write a self-contained HTML page with :meth:`html_section`; returns the path."""

        return standalone_page(path, f"Coverage: {self.settings.get('formula')}", self.html_section())


def coverage(fit, nsim: int = 200, methods=METHODS, level: float = 0.95, seed=None, n_jobs: int = 1,
             backend: str | None = None, directory=None, boot_nsim: int = 200, bayes_options: dict | None = None,
             progress: bool = True) -> CoverageResult:
    """Empirical coverage and width of interval methods, by simulating from ``fit``.

    Parameters
    ----------
    fit : LmerFit
        The model and the parameter values the data are simulated from.
    nsim : int
        Number of simulated data sets.
    methods : sequence of {"wald", "profile", "boot", "bayes"}
        ``bayes`` gives equal-tailed posterior intervals: the model is
        compiled once (:class:`lmmcompare.bayesian.refit.Refitter`) with the
        default priors scaled to ``fit``'s data, the same for every replicate.
    level : float
        Nominal level of every interval.
    seed : int, optional
        Seeds every replicate (through ``numpy.random.SeedSequence``).
    n_jobs : int
        Parallel replicates with joblib (-1: all cores).
    backend : {None, "dask"}
        ``"dask"`` runs the same jobs through joblib's Dask backend on the
        current ``dask.distributed`` client (a local one is started if none
        exists); needs ``pip install 'lmmcompare[dask]'``.
    directory : path, optional
        Where each replicate is written as it finishes.  Calling again with
        the same directory and settings loads the finished replicates and
        runs only the missing ones, so an interrupted study resumes.
    boot_nsim : int
        Bootstrap refits per replicate for ``boot``.
    bayes_options : dict, optional
        ``draws``, ``tune``, ``chains`` (default 500, 500, 2) and the
        Refitter's ``parameterization`` (default ``"marginal"``), ``priors``,
        ``target_accept`` and ``sampler`` (``"nutpie"`` for long studies).
    progress : bool
        Show a progress bar.

    Returns
    -------
    CoverageResult
    """

    if not isinstance(fit, LmerFit):
        raise ArgumentError(f"fit must be an LmerFit (from lmmcompare.lmer), got {type(fit).__name__}")
    nsim, boot_nsim = check_int("nsim", nsim, 1), check_int("boot_nsim", boot_nsim, 2)
    methods = _check_methods(methods)
    level = check_level("level", level)
    n_jobs = check_n_jobs("n_jobs", n_jobs)
    check_seed("seed", seed)
    check_bool("progress", progress)
    if backend not in (None, "dask"):
        raise ArgumentError(f"backend must be None (joblib's processes) or 'dask', got {backend!r}")
    if bayes_options is not None and not isinstance(bayes_options, dict):
        raise ArgumentError(f"bayes_options must be a dict of lmmcompare.bayes arguments, got {bayes_options!r}")
    unknown = set(bayes_options or {}) - BAYES_KEYS
    if unknown:
        raise ArgumentError(f"unknown bayes_options {sorted(unknown)}; use {', '.join(sorted(BAYES_KEYS))}")
    bayes_options = {**BAYES_DEFAULTS, **(bayes_options or {})}
    settings = {"formula": fit.spec.formula, "reml": fit.reml, "nsim": nsim, "methods": list(methods),
                "level": level, "seed": seed, "boot_nsim": boot_nsim, "bayes_options": bayes_options}
    if seed is None:   # a fresh seed, recorded (and reused when resuming from a directory)
        seed = _saved_seed(directory) if directory is not None else None
        seed = int(np.random.SeedSequence().entropy) if seed is None else seed
        settings["seed"] = seed
    seeds = np.random.SeedSequence(seed).spawn(nsim)
    done = _load(directory, settings) if directory is not None else {}
    todo = [r for r in range(nsim) if r not in done]
    args = (methods, level, boot_nsim, bayes_options, None if directory is None else os.fspath(directory))
    with Progress(nsim, "coverage study", enabled=progress) as bar:
        bar.update(len(done))
        if n_jobs == 1 and backend is None:
            for r in todo:
                done[r] = _replicate(fit, r, seeds[r], *args)
                bar.update(1)
        else:
            from joblib import Parallel, delayed

            with _backend(backend):
                jobs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                    delayed(_replicate)(fit, r, seeds[r], *args) for r in todo)
                for frame in jobs:
                    done[int(frame["replicate"].iloc[0])] = frame
                    bar.update(1)
    replicates = pd.concat([done[r] for r in range(nsim)], ignore_index=True)
    return CoverageResult(replicates=replicates, settings=settings)


def _backend(backend):
    if backend is None:
        return contextlib.nullcontext()
    try:
        from dask.distributed import Client, get_client
    except ImportError as exc:
        raise ArgumentError("backend='dask' needs dask.distributed: pip install 'lmmcompare[dask]'") from exc
    from joblib import parallel_config

    try:
        get_client()
    except ValueError:   # no client yet: a local cluster, closed when the interpreter exits
        Client(processes=True, threads_per_worker=1, dashboard_address=None)
    return parallel_config(backend="dask")


def _saved_seed(directory):
    path = os.path.join(directory, "study.json")
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle).get("seed")
    return None


def _load(directory, settings) -> dict:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "study.json")
    saved_settings = json.loads(json.dumps(settings, default=str))
    if os.path.exists(path):
        with open(path) as handle:
            saved = json.load(handle)
        if {k: v for k, v in saved.items() if k != "nsim"} != {k: v for k, v in saved_settings.items() if k != "nsim"}:
            raise ArgumentError(f"directory {os.fspath(directory)!r} holds a study with other settings "
                                f"({saved}); pass a new directory or the same settings to resume it")
    with open(path, "w") as handle:
        json.dump(saved_settings, handle, indent=1)
    done = {}
    for name in sorted(os.listdir(directory)):
        if name.startswith("replicate_") and name.endswith(".csv"):
            r = int(name[len("replicate_"):-len(".csv")])
            if r < settings["nsim"]:
                done[r] = pd.read_csv(os.path.join(directory, name), keep_default_na=False,
                                      na_values=[""], dtype={"error": str}).fillna({"error": ""})
    return done
