"""Frozen CLIP backbones (via open_clip) and class text embeddings."""
from pathlib import Path

import open_clip

open_clip.add_model_config(Path(__file__).parent / "model_configs" / "tiny.json")

from .backbone import (  # noqa: E402  (the tiny config must be registered first)
    COOP_NAMES,
    OPENAI_FILES,
    BackboneUnavailableError,
    feature_dim,
    load_clip,
    logit_scale,
)
from .templates import DEFAULT_TEMPLATE, ENSEMBLE_TEMPLATES  # noqa: E402
from .text import text_features  # noqa: E402

__all__ = [
    "COOP_NAMES", "OPENAI_FILES", "BackboneUnavailableError", "load_clip", "feature_dim", "logit_scale",
    "DEFAULT_TEMPLATE", "ENSEMBLE_TEMPLATES", "text_features",
]
