"""What runs executed one after another in one process may share (the sweep's in-process runner).

Off by default: every run then loads its backbone and reads its features as a fresh process
would. :func:`enable_sharing` turns on two process-wide, bounded (LRU) stores:

- **frozen backbones** per (architecture, weights identity, device, TorchScript permission, torch
  RNG state before loading): building a CLIP draws from the global torch RNG, so a run that reuses
  a stored backbone also gets the RNG state that loading it left, and its numbers equal those of
  a run that loaded it itself (runs with the same seed share; other seeds load once each);
- **image features** read from the feature cache, keyed by the cache's model and transform group
  and the exact image list, so a sweep reads each evaluation set from disk once.

Backbones are frozen (``requires_grad False``, eval mode) and never modified in place by a trainer
(a trainer that casts a tower to half precision works on a copy), so sharing them is safe.
"""
import hashlib
from collections import OrderedDict

import torch

_STATE = {"enabled": False, "max_backbones": 2, "max_feature_bytes": 2 << 30}
_BACKBONES = OrderedDict()
_FEATURES = None


def enable_sharing(max_backbones=2, max_feature_mb=2048):
    global _FEATURES
    _STATE.update(enabled=True, max_backbones=int(max_backbones), max_feature_bytes=int(max_feature_mb) << 20)
    _FEATURES = TensorLRU(_STATE["max_feature_bytes"])


def disable_sharing():
    global _FEATURES
    _STATE["enabled"] = False
    _BACKBONES.clear()
    _FEATURES = None


def sharing_enabled():
    return _STATE["enabled"]


def load_backbone(name, pretrained, device, cache_dir="", allow_torchscript=False):
    """``(model, tokenizer)`` as :func:`croft.clip.backbone.load_clip`, shared between runs when enabled."""
    from ..clip.backbone import load_clip

    if not _STATE["enabled"]:
        return load_clip(name, pretrained=pretrained, device=device, cache_dir=cache_dir,
                         allow_torchscript=allow_torchscript)
    from ..clip.weights import weights_identity

    rng_before = hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest()
    key = (name, str(weights_identity(pretrained)), str(torch.device(device)), bool(allow_torchscript), rng_before)
    if key in _BACKBONES:
        _BACKBONES.move_to_end(key)
        model, tokenizer, rng_after = _BACKBONES[key]
        torch.set_rng_state(rng_after)
        return model, tokenizer
    model, tokenizer = load_clip(name, pretrained=pretrained, device=device, cache_dir=cache_dir,
                                 allow_torchscript=allow_torchscript)
    _BACKBONES[key] = (model, tokenizer, torch.get_rng_state())
    while len(_BACKBONES) > _STATE["max_backbones"]:
        _BACKBONES.popitem(last=False)
    return model, tokenizer


def feature_memo():
    """The memo to hand a :class:`~croft.data.feature_cache.FeatureCache` for its loaded feature sets:
    the process-wide LRU when sharing is enabled, else a fresh dict (the run's own)."""
    return _FEATURES if _STATE["enabled"] and _FEATURES is not None else {}


class TensorLRU:
    """A dict of tensors bounded by their total size in bytes; least recently used entries go first."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items = OrderedDict()

    def __contains__(self, key):
        return key in self._items

    def __getitem__(self, key):
        self._items.move_to_end(key)
        return self._items[key]

    def __setitem__(self, key, value):
        if key in self._items:
            self.bytes -= self._size(self._items.pop(key))
        size = self._size(value)
        if size > self.max_bytes:
            return
        self._items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= self._size(old)

    def __len__(self):
        return len(self._items)

    @staticmethod
    def _size(tensor):
        return tensor.numel() * tensor.element_size()
