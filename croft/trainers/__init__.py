"""Trainers. Importing this package registers every trainer."""
from . import croft, zsclip  # noqa: F401
