"""Sweeping a root of what dead processes left (see ``_profiles.sweep``)."""

from ._profiles.sweep import SweepResult, prune_kept, sweep

__all__ = ["SweepResult", "prune_kept", "sweep"]
