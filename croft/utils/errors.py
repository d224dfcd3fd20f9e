"""Errors shared across layers."""


class CheckpointError(RuntimeError):
    """A file given as a checkpoint or as weights that croft cannot (or will not) read."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or inf loss; the message names the term and where it happened."""
