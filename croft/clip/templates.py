"""Prompt templates used to build class text embeddings (docs/method.md §1.2)."""

DEFAULT_TEMPLATE = "a photo of a {}."

ENSEMBLE_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
