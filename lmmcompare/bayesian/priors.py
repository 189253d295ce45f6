"""Prior descriptions, kept apart from PyMC (bambi's habit).

Defaults are weakly informative and scaled to the data, as rstanarm and brms
do: with ``s_y = sd(y)``,

* intercept (on centred predictors): ``StudentT(3, mean(y), 2.5 s_y)``
* each other fixed effect ``j``: ``Normal(0, 2.5 s_y / sd(x_j))``
* each random-effect sd and sigma: ``HalfStudentT(3, s_y)``
* each correlation matrix: ``LKJ(eta = 2)`` (mild shrinkage towards 0; eta = 1 is uniform)
* a structured term's common correlation (``cs``, ``cor|g``) and AR(1) correlation
  (``ar1``, ``rho|g``): ``Beta(1, 1)`` on the range rescaled to (0, 1), i.e. uniform on
  ``(-1/(p-1), 1)`` and ``(-1, 1)`` (brms' ``ar`` and ``cosy`` are flat on their bounds
  too, ``cosy``'s being [0, 1]; :mod:`.structured`); a structured term's sds have the sd prior above
* with ``sigma_by``, each level's residual sd: the sigma prior, independently
  (``sigma`` is the first level's; the ratios ``sigma_ratio_<level>|<f>`` follow)

A user overrides any class with a dict ``{"Intercept": ..., "b": ..., "b_Days": ...,
"sd": ..., "sd_Subject": ..., "sd_(Intercept)|Subject": ..., "cor": ..., "sigma": ...,
"common_cor": ..., "common_cor_<group>": ..., "cor|<group>": ..., "rho": ..., "rho_<group>": ...,
"rho|<group>": ...}``
whose values are :class:`Prior` objects or tuples such as ``("normal", 0, 10)``,
``("student_t", 3, 0, 5)``, ``("half_normal", 5)``, ``("half_student_t", 3, 5)``,
``("exponential", 0.1)``, ``("lkj", 1.0)``, ``("beta", 2, 2)`` (common correlation and rho
only: the Beta of ``(rho - low) / (1 - low)``).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arguments import shown
from ..errors import ArgumentError

_FAMILIES = {
    "normal": ("mu", "sigma"),
    "student_t": ("nu", "mu", "sigma"),
    "half_normal": ("sigma",),
    "half_student_t": ("nu", "sigma"),
    "exponential": ("lam",),
    "lkj": ("eta",),
    "beta": ("alpha", "beta"),   # a correlation rescaled to (0, 1) (structured terms)
}
_POSITIVE = {"half_normal", "half_student_t", "exponential"}


_SCALES = {"sigma", "nu", "lam", "eta", "alpha", "beta"}   # parameters that must be > 0 (PyMC fails inside the sampler otherwise)


@dataclass(frozen=True)
class Prior:
    """A prior family and its parameters, e.g. ``Prior("normal", (0.0, 10.0))`` (mu, sigma).

    The parameters are checked here: finite real numbers (numpy scalars too), and
    the scales ``sigma``, the degrees of freedom ``nu``, the rate ``lam`` and the
    LKJ shape ``eta`` strictly positive.
    """

    family: str
    params: tuple

    def __post_init__(self):
        if not isinstance(self.family, str) or self.family not in _FAMILIES:
            raise ArgumentError(f"unknown prior family {shown(self.family)}; use one of {', '.join(_FAMILIES)}")
        names = _FAMILIES[self.family]
        usage = f"{self.family}({', '.join(names)})"
        if not isinstance(self.params, (tuple, list)):
            example = repr(tuple([1.0] * len(names)))
            raise ArgumentError(f"the parameters of prior {usage} must be a tuple of {len(names)} number(s), "
                                f"e.g. Prior({self.family!r}, {example}), got {shown(self.params)}")
        if len(self.params) != len(names):
            raise ArgumentError(f"prior {usage} takes {len(names)} parameter(s), got {len(self.params)}: "
                                f"{', '.join(map(shown, self.params))}")
        for name, value in zip(names, self.params):
            ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
                  and np.isfinite(value) and (name not in _SCALES or value > 0))
            if not ok:
                need = "a finite number > 0" if name in _SCALES else "a finite number"
                raise ArgumentError(f"{name} of prior {usage} must be {need}, got {shown(value)}")
        object.__setattr__(self, "params", tuple(float(v) for v in self.params))

    @property
    def kwargs(self) -> dict:
        return dict(zip(_FAMILIES[self.family], self.params))

    def __str__(self):
        return f"{self.family}({', '.join(f'{v:.4g}' for v in self.params)})"

    def dist(self):
        """An unnamed PyMC distribution (for ``pm.logp`` of a transformed sd, :mod:`.covariance`)."""

        return _PYMC[self.family].dist(**self.kwargs)

    def variable(self, name, **extra):

        return _PYMC[self.family](name, **self.kwargs, **extra)


def _pymc_families():
    import pymc as pm

    return {"normal": pm.Normal, "student_t": pm.StudentT, "half_normal": pm.HalfNormal,
            "half_student_t": pm.HalfStudentT, "exponential": pm.Exponential, "beta": pm.Beta}


class _Lazy(dict):
    def __missing__(self, key):
        self.update(_pymc_families())
        return dict.__getitem__(self, key)


_PYMC = _Lazy()


def as_prior(value, where: str, positive: bool = False, lkj: bool = False, unit: bool = False) -> Prior:
    """The :class:`Prior` of ``value`` (a Prior or a tuple ``(family, *parameters)``) for prior key ``where``."""
    if isinstance(value, Prior):
        prior = value
    elif isinstance(value, tuple) and value and isinstance(value[0], str):
        try:
            prior = Prior(value[0], tuple(value[1:]))
        except ArgumentError as exc:
            raise ArgumentError(f"prior for {where!r}: {exc}") from None
    else:
        raise ArgumentError(f"prior for {where!r} must be a Prior or a tuple like ('normal', 0, 10), "
                            f"got {shown(value)}")
    if lkj and prior.family != "lkj":
        raise ArgumentError(f"prior for {where!r} must be ('lkj', eta)")
    if unit and prior.family != "beta":
        raise ArgumentError(f"prior for {where!r} must be ('beta', a, b), the Beta of the correlation rescaled "
                            "to (0, 1); ('beta', 1, 1) is uniform over its range")
    if unit or lkj:
        return prior
    if positive and prior.family not in _POSITIVE:
        raise ArgumentError(f"prior for {where!r} must be on positive values: one of {', '.join(sorted(_POSITIVE))}")
    if not positive and prior.family not in ("normal", "student_t"):
        raise ArgumentError(f"prior for {where!r} must be normal or student_t")
    return prior


@dataclass(frozen=True)
class PriorSet:
    """Every prior of a model, by the parameter names shared with the frequentist engine."""

    intercept: Prior | None
    fixed: dict          # name -> Prior (non-intercept fixed effects)
    sds: dict            # "sd_col|group" -> Prior
    cors: dict           # term label -> Prior: lkj for correlated unstructured terms, beta for cs / ar1
    sigma: Prior
    user: tuple = ()     # keys the user set
    from_user: tuple = ()  # the parameters (``table()``'s names) whose prior a user key set

    def table(self) -> pd.DataFrame:
        rows = []
        if self.intercept is not None:
            rows.append(("Intercept", "(Intercept)", str(self.intercept)))
        rows += [("b", k, str(v)) for k, v in self.fixed.items()]
        rows += [("sd", k, str(v)) for k, v in self.sds.items()]
        rows += [("cor", k, str(v)) for k, v in self.cors.items()]
        rows.append(("sigma", "sigma", str(self.sigma)))
        frame = pd.DataFrame(rows, columns=["class", "parameter", "prior"])
        frame["source"] = ["user" if name in self.from_user else "default" for _, name, _ in rows]
        return frame


def default_priors(spec, priors: dict | None = None) -> PriorSet:
    """Data-scaled defaults, with the user's overrides applied (a PriorSet is used as it is)."""
    if isinstance(priors, PriorSet):   # fixed priors, e.g. the same for every simulated data set of an SBC
        _check_prior_set(priors, default_priors(spec))
        return priors
    if priors is not None and not isinstance(priors, dict):
        raise ArgumentError(f"priors must be a dict, e.g. {{'sigma': ('half_normal', 10)}}, got {priors!r}")
    priors = dict(priors or {})
    y = spec.y
    sy = float(np.std(y, ddof=1))
    names = spec.fixed_names
    has_intercept = "(Intercept)" in names
    used, from_user = set(), []

    def pick(target, keys, default, **kind):
        """The prior of parameter ``target``: the first of ``keys`` the user set, else ``default``."""
        for k in keys:
            if k in priors:
                used.add(k)
                from_user.append(target)
                return as_prior(priors[k], k, **kind)
        return default

    intercept = pick("(Intercept)", ["Intercept", "(Intercept)"],
                     Prior("student_t", (3.0, float(np.mean(y)), 2.5 * sy))) if has_intercept else None
    fixed = {}
    for j, name in enumerate(names):
        if name == "(Intercept)":
            continue
        sx = float(np.std(spec.X[:, j], ddof=1)) or 1.0
        fixed[name] = pick(name, [f"b_{name}", "b"], Prior("normal", (0.0, 2.5 * sy / sx)))
    sds, cors = {}, {}
    for i, t in enumerate(spec.terms):
        for row in spec.parameters.sds(i):
            sds[row.label] = pick(row.label, [row.label, f"sd_{t.group}", "sd"], Prior("half_student_t", (3.0, sy)),
                                  positive=True)
        if t.structured and t.structure.has_correlation(t.p):
            row = next(r for r in spec.parameters.of_term(i) if r.kind != "sd")
            cors[t.label] = pick(row.label, [row.label, f"{row.kind}_{t.group}", row.kind], Prior("beta", (1.0, 1.0)),
                                 unit=True)
        elif t.correlated and not t.structured:
            cors[t.label] = pick(t.label, [f"cor_{t.group}", "cor"], Prior("lkj", (2.0,)), lkj=True)
    sigma = pick("sigma", ["sigma"], Prior("half_student_t", (3.0, sy)), positive=True)
    unknown = set(priors) - used
    if unknown:
        raise ArgumentError(f"unknown prior key(s) {', '.join(sorted(unknown))}; use Intercept, b, b_<name>, sd, "
                            "sd_<group>, sd_<col>|<group>, cor, cor_<group>, common_cor, common_cor_<group>, cor|<group>, "
                            "rho, rho_<group>, rho|<group> or sigma")
    return PriorSet(intercept=intercept, fixed=fixed, sds=sds, cors=cors, sigma=sigma, user=tuple(sorted(used)),
                    from_user=tuple(from_user))


def _check_prior_set(given: PriorSet, expected: PriorSet) -> None:
    """A PriorSet passed as ``priors`` must name exactly this model's parameters."""
    def names(ps):
        return ({"(Intercept)"} if ps.intercept is not None else set()) | set(ps.fixed) | set(ps.sds) \
            | {f"cor of {label}" for label in ps.cors}

    lacks, extra = sorted(names(expected) - names(given)), sorted(names(given) - names(expected))
    if lacks or extra:
        detail = "; ".join(part for part in (f"it lacks {', '.join(lacks)}" if lacks else "",
                                             f"it has {', '.join(extra)}, which this model does not" if extra else "")
                           if part)
        raise ArgumentError(f"priors is a PriorSet made for another model ({detail}); pass a dict of overrides "
                            "such as {'sd': ('half_normal', 10)}, or default_priors(spec, ...) of this model")
