"""Inference on an LmerFit: denominator df, F-tests, profile and bootstrap intervals."""
from .bootstrap import bootstrap
from .confint import confint
from .ddf import satterthwaite_df
from .kenward_roger import KenwardRoger, kenward_roger, kenward_roger_df, kenward_roger_vcov
from .profile import Profile, profile
from .hypotheses import anova_terms, coef_table, contrast

__all__ = ["coef_table", "contrast", "anova_terms", "confint", "profile", "Profile", "bootstrap",
           "satterthwaite_df", "kenward_roger", "KenwardRoger", "kenward_roger_df", "kenward_roger_vcov"]
