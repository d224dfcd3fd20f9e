"""Trainers. Importing this package registers every trainer."""
from . import clip_adapter, cocoop, coop, dplclip, tip_adapter  # noqa: F401  (baselines, docs/method.md §6)
from . import croft, zsclip  # noqa: F401
