"""Derived quantities of a fit, in both paradigms: estimated marginal means and their contrasts.

Each is a linear function ``L beta`` of the fixed effects, so the frequentist
answer takes ``L``'s estimate, standard error and df from the fit (Kenward-Roger
or Satterthwaite) and the Bayesian one applies ``L`` to every posterior draw.
"""
