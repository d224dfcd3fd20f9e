"""Sweeps: grids as data (``configs/sweeps/*.yaml``), run identity by fingerprint, an in-process runner,
local and submitit launchers, feature precompute. Command line: ``croft-sweep`` (:mod:`croft.sweep.cli`);
documentation: ``docs/sweeps.md``. Importing this package does not import torch.
"""
from .grid import Grid, GridError, load_grid

__all__ = ["Grid", "GridError", "load_grid"]
