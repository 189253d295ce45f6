"""Matplotlib figures; every function returns its Figure."""
from .profile import plot_profile

__all__ = ["plot_profile"]
