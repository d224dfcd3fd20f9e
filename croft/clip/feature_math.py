"""Feature math shared by every method: the two row normalisations.

Two normalisations exist on purpose. CRoFT (and zero-shot CLIP, whose logits CRoFT starts from)
divide by ``eps + ||x||`` as the reference implementation does (``docs/method.md`` §0);
the prompt-learning and adapter baselines divide by ``||x||`` exactly, as their own papers' code.
"""
import torch

NORM_EPS = 1e-6


def l2norm(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Row-wise ``x / (eps + ||x||)`` (the epsilon is added to the norm)."""
    return x / (eps + x.norm(dim=-1, keepdim=True))


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Row-wise ``x / ||x||``."""
    return x / x.norm(dim=-1, keepdim=True)

