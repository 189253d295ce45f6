"""The frozen result of a frequentist fit.

``LmerFit`` holds values only (theta, beta, sigma, the spherical and scaled
random effects, the fixed-effect covariance, conditional covariances, and the
immutable cross-products and factor it was fitted from) and computes
everything else from them; it is never a fitting workspace.

Derived values that cost work (the refit by the other criterion, the
covariance of the variance parameters, Kenward-Roger's pieces) are computed
once per fit and kept: by ``functools.cached_property`` (which writes the
instance ``__dict__``, as a frozen dataclass allows) or in the fit's
:class:`DerivedValues`.  Each is a pure function of the fit's fields, so
keeping it cannot change what the fit returns; ``dataclasses.replace`` makes a
new fit with nothing kept.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..archive import save_archive
from ..arguments import check_bool, check_choice, check_options
from ..errors import SingularFitWarning
from ..spec import ModelSpec
from ..spec.update import INPUTS, updated_inputs
from ..core.blocks import CrossProducts
from ..core.factor import BlockedFactor, factorize
from ..core.relcovar import theta_to_T
from . import inference
from .display import summary_text
from .fit import _OPTIONS, Devfun, optimize_lmer
from .optimize import OptSummary
from .prediction import predict_rows
from .refit import refit_response
from .simulate import simulate_responses
from .estimates import values_at
from .persist import lmer_fit_content
from .variance_components import residual_sd, term_covariances, variance_parameters, varcorr_frame


class DerivedValues:
    """Values an inference routine derives from a fit, computed once and kept by name.

    Holds only pure functions of the fit's fields, and tools whose answers are
    (the fit's :class:`~lmmcompare.freq.refit.ResponseRefit`: its scratch arrays are
    per thread and its answers never depend on them), so a kept value is, or
    answers as, what a fresh computation would.
    """

    def __init__(self):
        self._values = {}

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def get(self, name: str, compute):
        """The value kept under ``name``, from ``compute()`` the first time."""
        if name not in self._values:
            self._values[name] = compute()
        return self._values[name]


@dataclass(frozen=True, eq=False)
class LmerFit:
    """A linear mixed model fitted by REML or ML (lme4's ``merMod``).

    Attributes
    ----------
    spec : ModelSpec
    reml : bool
    theta : ndarray
        Relative covariance parameters, lme4's order and meaning.
    phi : ndarray
        The optimizer's parameters (:class:`~lmmcompare.freq.fit.Devfun`): theta when
        every term is unstructured; structured terms' relative sds and correlations
        and the logs of ``sigma_by``'s residual sd ratios otherwise.
    beta : ndarray
        Fixed effects (see :attr:`fixef` for the named Series).
    sigma : float
        Residual standard deviation.
    u, b : ndarray
        Spherical and scaled conditional modes (``b = Lambda u``), all terms stacked.
    objective : float
        REML criterion or deviance (-2 log-likelihood), lme4's scale.
    singular : bool
        As lme4's ``isSingular`` (a diagonal theta below 1e-4).
    opt : OptSummary
        Optimizer record (evaluations, time, convergence).
    cp : CrossProducts
        The cross-products of [Z X y] the fit was computed from (immutable).
    factor : BlockedFactor
        ``L(theta)`` at the fitted theta (a property: built from ``cp`` on first use and kept).
    derived : DerivedValues
        Values inference derived from this fit, kept (see the module docstring).
    """

    spec: ModelSpec
    reml: bool
    theta: np.ndarray
    phi: np.ndarray
    beta: np.ndarray
    sigma: float
    u: np.ndarray
    b: np.ndarray
    objective: float
    vcov_beta: np.ndarray
    cond_blocks: list
    singular: bool
    opt: OptSummary
    cp: CrossProducts = field(repr=False)
    derived: DerivedValues = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "derived", DerivedValues())

    @property
    def factor(self) -> BlockedFactor:
        """``L(theta)``, the blocked factor at the fitted theta (:func:`~lmmcompare.core.factor.factorize`)."""
        return self.derived.get("factor", lambda: factorize(self.cp, self.theta))

    # ---- the same model by the other criterion ----------------------------------------
    def by_criterion(self, reml: bool) -> "LmerFit":
        """This fit if it is by ``reml``'s criterion, else the same model refitted by it.

        lme4's ``refitML`` (``reml=False`` on a REML fit) or ``update(fit, REML = TRUE)``;
        the refit reuses this fit's cross-products and is made once per fit.
        """
        check_bool("reml", reml)
        return self if bool(reml) == self.reml else self._other_criterion

    @cached_property
    def _other_criterion(self) -> "LmerFit":
        return _optimized(Devfun(spec=self.spec, cp=self.cp, reml=not self.reml))

    def update(self, formula: str | None = None, data=None, **changes) -> "LmerFit":
        """A new fit of this model with some arguments changed, as R's ``update``.

        ``formula`` may use ``.`` for the old sides (``". ~ . - Days"``, R's
        ``update.formula``); ``data`` defaults to this fit's model frame;
        ``changes`` are any of :func:`lmmcompare.lmer`'s arguments (``reml``,
        ``weights``, ``offset``, ``contrasts``, ``subset``, ``na_action`` and the
        optimizer's options).

        >>> fit.update(". ~ . - Days")        # doctest: +SKIP
        >>> fit.update(reml=False)            # doctest: +SKIP
        """
        from ..core.blocks import cross_products

        spec_arguments, rest = updated_inputs(self.spec, formula, data, changes)
        reml = check_bool("reml", rest.pop("reml", self.reml))
        start = rest.pop("start", None)
        check_options("update", rest, dict(_OPTIONS), also=("formula", "data", "reml", "start", *INPUTS))
        spec = ModelSpec.from_formula(**spec_arguments)
        if formula is None and data is None and not set(changes) - {"reml"}:
            return self.by_criterion(reml)   # same model: lme4's refitML / update(REML=)
        return _optimized(Devfun(spec=spec, cp=cross_products(spec), reml=reml), start=start, **rest)

    # ---- likelihood summaries -------------------------------------------------
    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for REML fits), ``-objective / 2``."""
        return -0.5 * self.objective

    @property
    def npar(self) -> int:
        """Number of parameters: fixed effects, phi (theta) and sigma (lme4's ``df`` of ``logLik``)."""
        return self.spec.p + self.phi.size + 1

    @property
    def aic(self) -> float:
        """``objective + 2 npar`` (for a REML fit, from the REML criterion, as lme4)."""
        return self.objective + 2 * self.npar

    @property
    def bic(self) -> float:
        """``objective + log(n) npar``."""
        return self.objective + np.log(self.nobs) * self.npar

    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return self.spec.n

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom, ``nobs - npar`` (lme4's ``df.resid``)."""
        return self.nobs - self.npar

    @property
    def converged(self) -> bool:
        """Whether the optimizer passed lme4's gradient check (details in ``opt``)."""
        return self.opt.converged

    @property
    def n_evals(self) -> int:
        """Evaluations of the objective during optimisation."""
        return self.opt.n_evals

    @property
    def fit_seconds(self) -> float:
        """Wall time of the optimisation."""
        return self.opt.seconds

    # ---- fixed effects ----------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates by lme4's coefficient names (lme4's ``fixef``)."""
        return pd.Series(self.beta, index=self.spec.fixed_names, name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed-effect estimates, ``sigma^2 (L_X L_X')^{-1}``, as a named DataFrame."""
        names = self.spec.fixed_names
        return pd.DataFrame(self.vcov_beta, index=names, columns=names)

    @property
    def se(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        return pd.Series(np.sqrt(np.diag(self.vcov_beta)), index=self.spec.fixed_names, name="Std. Error")

    # ---- variance components ------------------------------------------------------
    @property
    def T_blocks(self) -> list[np.ndarray]:
        """The lower-triangular relative factors ``T_i`` of each term, from theta."""
        return theta_to_T(self.theta, [t.p for t in self.spec.terms])

    def term_covariances(self) -> list[np.ndarray]:
        """``Sigma_i = sigma^2 T_i T_i'`` for each term."""
        return term_covariances(self)

    @property
    def group_labels(self) -> list[str]:
        """Term labels as R's ``as.data.frame(VarCorr)`` gives them (``Subject``, ``Subject.1``)."""
        return [t.varcorr_group for t in self.spec.terms]

    @property
    def varcorr(self) -> pd.DataFrame:
        """Rows of R's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor (every implied sd and cor)."""
        return varcorr_frame(self)

    @property
    def residual_sd(self) -> pd.Series:
        """The residual sd by level of ``sigma_by`` (glmmTMB's ``sigma`` by level); ``sigma`` alone without it."""
        return residual_sd(self)

    def variance_parameters(self) -> pd.Series:
        """The estimated variance parameters (sd, cor, common cor, rho, sigma, sigma ratios) under the shared names."""
        return variance_parameters(self)

    # ---- random effects -------------------------------------------------------------
    def _term_slices(self):
        pos = 0
        for t in self.spec.terms:
            yield t, slice(pos, pos + t.q)
            pos += t.q

    def ranef(self, condsd: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes per grouping factor (levels x columns), as lme4's ``ranef``.

        With ``condsd=True`` the conditional standard deviations instead.  A term
        whose names repeat an earlier term's on its factor (``(x | g) + (1 | g)``)
        has its own frame, keyed by its :attr:`~lmmcompare.spec.RandomTerm.parameter_group`
        (``g.1``), where lme4 repeats the column name.
        """
        check_bool("condsd", condsd)
        frames: dict[str, list[pd.DataFrame]] = {}
        for (t, sl), blocks in zip(self._term_slices(), self.cond_blocks):
            values = (np.sqrt(np.diagonal(blocks, axis1=1, axis2=2)) if condsd
                      else self.b[sl].reshape(t.n_levels, t.p))
            frames.setdefault(t.parameter_group, []).append(
                pd.DataFrame(values, index=pd.Index(t.levels, name=t.group), columns=list(t.columns)))
        return {g: pd.concat(parts, axis=1) for g, parts in frames.items()}

    # ---- fitted values, prediction, simulation ------------------------------------------
    def _random_part(self, b) -> np.ndarray:
        out = np.zeros(self.spec.n)
        for t, sl in self._term_slices():
            coef = b[sl].reshape(t.n_levels, t.p)
            out += np.einsum("ij,ij->i", t.design.matrix, coef[t.codes])
        return out

    def fitted(self) -> np.ndarray:
        """``offset + X beta + Z b`` for the rows of the model frame."""
        return self.spec.working_offset + self.spec.X @ self.beta + self._random_part(self.b)

    def residuals(self, type: str = "response") -> np.ndarray:
        """Residuals: ``y - fitted`` (``"response"``, lme4's default for an LMM) or
        ``sqrt(w) (y - fitted)`` (``"pearson"``, equal to them without prior weights)."""
        check_choice("type", type, ("response", "pearson"))
        r = self.spec.y - self.fitted()
        return self.spec.weighted_rows(r) if type == "pearson" else r

    def predict(self, newdata: pd.DataFrame | None = None, re: bool = True, allow_new_levels: bool = False,
                se_fit: bool = False, interval: str | None = None, level: float = 0.95, offset=None):
        """Predictions, population-level (``re=False``) or conditional on the random effects (lme4's ``predict``).

        Parameters
        ----------
        newdata : DataFrame, optional
            New rows; the model frame when omitted.
        re : bool
            Include the conditional modes of the random effects.
        allow_new_levels : bool
            Levels not in the fit get zero random effects (else a :class:`~lmmcompare.errors.NewLevelError`).
        se_fit : bool
            Return standard errors (lme4's ``se.fit``): conditional on theta and sigma,
            ``sqrt(x'V_beta x)`` with ``re=False``, else from the joint covariance of
            beta and b, ``sigma^2 (L_a L_a')^{-1}`` (:mod:`lmmcompare.freq.prediction`).
        interval : {"confidence", "prediction"}, optional
            ``fit -/+ z se`` ("confidence"), or for a new observation ``se^2`` plus
            ``sigma^2 / w`` (``w = 1`` on new rows) and the variance of random effects not
            conditioned on (new levels; every term with ``re=False``) ("prediction").
        level : float
            Coverage of the interval (normal quantiles).
        offset : array, optional
            With ``newdata``, the ``offset`` argument's values for its rows (required when
            the fit had one); the formula's ``offset(...)`` terms are evaluated on ``newdata``.

        Returns
        -------
        ndarray, or DataFrame with ``se_fit`` or ``interval``
            ``fit``, ``se`` (``lower``, ``upper``), indexed as ``newdata`` (or the model frame).
        """
        return predict_rows(self, newdata, re, allow_new_levels, offset, se_fit, interval, level)

    def simulate(self, nsim: int = 1, seed=None) -> pd.DataFrame:
        """Responses simulated from the fitted model (new b and new noise), as lme4's ``simulate``.

        Returns
        -------
        DataFrame
            ``n x nsim``, columns ``sim_1 ... sim_nsim``.
        """
        return simulate_responses(self, nsim, seed)

    def refit(self, newresp) -> "LmerFit":
        """This model fitted to a new response (lme4's ``refit(object, newresp)``): same design, weights,
        offset and criterion, optimised from this fit's theta; one value per row of the model frame."""
        devfun, opt = refit_response(self, newresp)
        return _warned_if_singular(LmerFit(**values_at(devfun, opt.theta), opt=opt), stacklevel=3)

    # ---- inference (lmerTest, pbkrtest, lme4's confint) ---------------------------------
    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Estimate, se, df, t, p per fixed effect; ``ddf`` in satterthwaite, kenward-roger, none."""
        return inference.coef_table(self, ddf)

    def contrast(self, L, ddf: str = "satterthwaite") -> pd.DataFrame:
        """t- or F-test of ``L beta = 0`` (lmerTest's ``contest``)."""
        return inference.contrast(self, L, ddf)

    def confint(self, method: str = "profile", level: float = 0.95, nsim: int = 500, seed=None,
                n_jobs: int = 1, progress: bool = True) -> pd.DataFrame:
        """Intervals for every parameter: ``profile``, ``wald`` or parametric ``boot``."""
        return inference.confint(self, method=method, level=level, nsim=nsim, seed=seed, n_jobs=n_jobs,
                       progress=progress)

    def profile(self, which=None, level: float = 0.95):
        """Profile zeta traces of each parameter (see :func:`lmmcompare.freq.inference.profile`)."""
        return inference.profile(self, which=which, level=level)

    # ---- display -----------------------------------------------------------------------
    def summary(self) -> str:
        """Text laid out like lme4's ``summary(fit)``."""
        return summary_text(self)

    # ---- saving ------------------------------------------------------------------------
    def save(self, path) -> str:
        """Write this fit to one file at ``path``; :func:`lmmcompare.load` reads it back without refitting.

        The file is a zip archive of data only (JSON and NPY arrays, never a pickle), so
        loading one from someone else runs no code.  The model is rebuilt from its formula
        and model frame, the cross-products and factor are evaluated at the saved theta.
        Returns the path written.
        """
        return save_archive(path, "LmerFit", lambda writer: lmer_fit_content(writer, self))

    def __repr__(self):
        kind = "REML" if self.reml else "ML"
        crit = "REML criterion" if self.reml else "deviance"
        return (f"<LmerFit {kind}: {self.spec.formula} | n={self.nobs}, {crit}={self.objective:.4f}, "
                f"sigma={self.sigma:.4g}{', singular' if self.singular else ''}>")


def _optimized(devfun: Devfun, **options) -> LmerFit:
    """The fit at the optimum of ``devfun`` (what ``lmer`` returns), with lme4's singular-fit warning."""
    opt = optimize_lmer(devfun, **options)
    return _warned_if_singular(LmerFit(**values_at(devfun, opt.theta), opt=opt), stacklevel=5)


def _warned_if_singular(fit: LmerFit, stacklevel: int) -> LmerFit:
    """``fit``, after lme4's singular-fit warning where it is singular."""
    if fit.singular:
        warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=stacklevel)
    return fit
