"""Matplotlib figures; every function returns its Figure."""
from .compare import caterpillar_plot, forest_plot, ppc_plot, shrinkage_plot, trace_plot
from .profile import plot_profile

__all__ = ["plot_profile", "forest_plot", "caterpillar_plot", "shrinkage_plot", "ppc_plot", "trace_plot"]
