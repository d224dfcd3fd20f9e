"""Errors shared across layers."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or inf loss; the message names the term and where it happened."""
