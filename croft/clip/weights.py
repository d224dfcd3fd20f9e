"""Which backbone weights a model has: an open_clip tag, a checkpoint file's content hash, or the
state-dict hash of a random init.

One identity serves every part that must tell weights apart: the feature cache's model key
(:mod:`croft.data.feature_cache`), a run's fingerprint (:mod:`croft.engine.fingerprint`, which
stores its own spelling of it), the process-wide backbone store (:mod:`croft.engine.shared`) and
the detector file of a run (:mod:`croft.evaluation.detector`).
"""
import hashlib
import json
import os
from pathlib import Path

import torch

from ..utils.atomic import atomic_write_bytes

__all__ = ["file_fingerprint", "is_random_init", "state_dict_digest", "weights_identity"]

_FINGERPRINTS = {}


def is_random_init(pretrained):
    """Whether ``MODEL.BACKBONE.PRETRAINED`` asks for random weights (``none``, any case, or empty)."""
    return pretrained is None or str(pretrained).strip().lower() in ("none", "")


def state_dict_digest(model):
    """SHA-256 of a module's state dict (names, dtypes, shapes and values)."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        value = value.detach().cpu().contiguous()
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return h.hexdigest()


def file_fingerprint(path, memo_dir=None):
    """SHA-256 of a file's content, remembered per (path, size, mtime) in memory and under ``memo_dir``."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    st = os.stat(path)
    ident = f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
    if ident in _FINGERPRINTS:
        return _FINGERPRINTS[ident]
    memo = os.path.join(memo_dir, hashlib.sha1(ident.encode()).hexdigest() + ".json") if memo_dir else None
    if memo and os.path.isfile(memo):
        try:
            with open(memo) as f:
                record = json.load(f)
            if record.get("ident") == ident and len(record.get("sha256", "")) == 64:
                _FINGERPRINTS[ident] = record["sha256"]
                return record["sha256"]
        except (OSError, ValueError):
            pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    _FINGERPRINTS[ident] = h.hexdigest()
    if memo:
        try:
            atomic_write_bytes(memo, json.dumps({"ident": ident, "sha256": h.hexdigest()}).encode())
        except OSError:
            pass
    return h.hexdigest()


def weights_identity(pretrained, model=None, memo_dir=None):
    """The identity of the weights ``pretrained`` names, as a JSON-able dict with a ``kind``.

    - ``{"kind": "random-init", "state_dict_sha256": ...}`` for ``none``: a random init differs per
      seed, so only the built ``model`` identifies it (without ``model`` the digest is left out);
    - ``{"kind": "file", "sha256": ...}`` for a checkpoint file (``memo_dir``: see :func:`file_fingerprint`);
    - ``{"kind": "tag", "tag": ...}`` for an open_clip tag (``openai``, ``laion400m_e31``).

    ``none`` is read before any file, as :func:`croft.clip.backbone.load_clip` reads it.
    """
    if is_random_init(pretrained):
        ident = {"kind": "random-init"}
        if model is not None:
            ident["state_dict_sha256"] = state_dict_digest(model)
        return ident
    source = str(pretrained).strip()
    path = Path(source).expanduser()
    if path.is_file():
        return {"kind": "file", "sha256": file_fingerprint(path, memo_dir)}
    return {"kind": "tag", "tag": source}
