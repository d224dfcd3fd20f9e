"""Load a frozen fp32 CLIP model and its tokenizer through open_clip.

``load_clip(name, pretrained)`` accepts CoOp's backbone names (``ViT-B/16``) and open_clip names
(``ViT-B-16``, ``tiny``, ``<arch>-quickgelu``). ``pretrained`` is ``"openai"``, an open_clip tag
(``laion400m_e31``), a checkpoint file, or ``"none"``. Preprocessing is never taken from open_clip.
"""
import contextlib
import logging
import os
import pickle
import socket
import ssl
import threading
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import open_clip
import torch
from open_clip.factory import load_state_dict as _open_clip_state_dict
from open_clip.model import convert_to_custom_text_state_dict

from ..utils.errors import CheckpointError

COOP_NAMES = {
    "RN50": "RN50",
    "RN101": "RN101",
    "RN50x4": "RN50x4",
    "RN50x16": "RN50x16",
    "RN50x64": "RN50x64",
    "ViT-B/32": "ViT-B-32",
    "ViT-B/16": "ViT-B-16",
    "ViT-L/14": "ViT-L-14",
    "ViT-L/14@336px": "ViT-L-14-336",
}

# open_clip architecture -> file name used by OpenAI's `clip` package in ~/.cache/clip
OPENAI_FILES = {arch: coop.replace("/", "-").replace("@", "-") + ".pt" for coop, arch in COOP_NAMES.items()}
OPENAI_CACHE_DIR = "~/.cache/clip"

# Extra entries of OpenAI's TorchScript state dicts; they are not weights.
_OPENAI_META_KEYS = ("input_resolution", "context_length", "vocab_size")
_QUICKGELU_SUFFIX = "-quickgelu"
_PROBE_TIMEOUT_S = 3.0


class BackboneUnavailableError(RuntimeError):
    """The requested pretrained weights are neither cached nor downloadable."""


def load_clip(name, pretrained="openai", device="cpu", cache_dir="", allow_torchscript=False):
    """Return ``(model, tokenizer)``: the model is fp32, in eval mode, frozen and on ``device``.

    A checkpoint *path* in TorchScript format is loaded only with ``allow_torchscript`` (loading a
    TorchScript archive can run code); OpenAI's own files under the ``openai`` tag always load.
    """
    arch, quick_gelu = _resolve_arch(name)
    source = "none" if pretrained is None else str(pretrained)
    if source.strip().lower() in ("none", ""):
        model = open_clip.create_model(arch, force_quick_gelu=quick_gelu)
    elif source == "openai":
        model = _load_openai(name, arch, cache_dir)
    else:
        model = _load_path_or_tag(name, arch, source, quick_gelu, cache_dir, allow_torchscript)
    model = model.float().eval().requires_grad_(False).to(device)
    return model, open_clip.get_tokenizer(arch)


def feature_dim(model):
    """Width D of the joint image/text embedding."""
    output_dim = getattr(model.visual, "output_dim", None)
    return int(output_dim) if output_dim else int(model.text_projection.shape[-1])


def logit_scale(model):
    """The logit multiplier (inverse temperature) ``exp(logit_scale)`` as a float."""
    return float(model.logit_scale.detach().exp())


def _resolve_arch(name):
    known = open_clip.list_models()
    arch = COOP_NAMES.get(name, name)
    quick_gelu = False
    # "<arch>-quickgelu" is the same model with QuickGELU; keep the base name for file lookups.
    if arch.endswith(_QUICKGELU_SUFFIX) and arch[: -len(_QUICKGELU_SUFFIX)] in known:
        arch, quick_gelu = arch[: -len(_QUICKGELU_SUFFIX)], True
    if arch not in known:
        raise ValueError(
            f"Unknown backbone {name!r}. CoOp names: {', '.join(COOP_NAMES)}; "
            f"open_clip architecture names (open_clip.list_models(), e.g. 'ViT-B-16', 'tiny') are accepted as is."
        )
    return arch, quick_gelu


def _load_openai(name, arch, cache_dir):
    if arch not in OPENAI_FILES:
        raise ValueError(
            f"OpenAI released no weights for backbone {name!r}; OpenAI backbones: {', '.join(COOP_NAMES)}. "
            f"Use pretrained='none', an open_clip tag or a checkpoint path."
        )
    local_file = Path(cache_dir or OPENAI_CACHE_DIR).expanduser() / OPENAI_FILES[arch]
    if local_file.is_file():
        return _load_file(arch, local_file, quick_gelu=True, allow_torchscript=True)
    return _load_tag(name, arch, "openai", False, cache_dir, missing_hint=f"put OpenAI's checkpoint file at {local_file}")


def _load_path_or_tag(name, arch, source, quick_gelu, cache_dir, allow_torchscript=False):
    path = Path(source).expanduser()
    if path.is_file():
        return _load_file(arch, path, quick_gelu, allow_torchscript)
    if open_clip.get_pretrained_cfg(arch, source):
        return _load_tag(name, arch, source, quick_gelu, cache_dir,
                         missing_hint="download them on a connected machine or pass a checkpoint file path")
    if os.sep in source or "/" in source or path.suffix or source.startswith(("~", ".")):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    raise ValueError(
        f"{source!r} is neither a checkpoint file nor an open_clip pretrained tag of {arch!r} "
        f"(tags: {open_clip.list_pretrained_tags_by_model(arch)})."
    )


def _load_tag(name, arch, tag, quick_gelu, cache_dir, missing_hint):
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    quick_gelu = quick_gelu or cfg.get("quick_gelu", False)
    cached = _hf_cached_file(cfg, cache_dir)
    if cached:
        return _load_file(arch, Path(cached), quick_gelu)
    reason = _offline_reason(cfg)
    if reason:
        raise BackboneUnavailableError(
            f"Backbone {name!r} with pretrained={tag!r}: the weights are not cached and we are offline "
            f"({reason}); {missing_hint}."
        )
    try:
        return open_clip.create_model(arch, pretrained=tag, force_quick_gelu=quick_gelu, cache_dir=cache_dir or None)
    except RuntimeError as err:
        raise BackboneUnavailableError(
            f"Backbone {name!r} with pretrained={tag!r}: download failed ({err}); {missing_hint}."
        ) from err


def _load_file(arch, path, quick_gelu, allow_torchscript=False):
    """Load a TorchScript archive, an OpenAI-format state dict or an open_clip state dict."""
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"MODEL.BACKBONE.PRETRAINED file {path} is empty (0 bytes); expected CLIP weights "
                              "(an OpenAI or open_clip checkpoint)")
    if _is_torchscript(path):
        if not allow_torchscript:
            raise CheckpointError(
                f"MODEL.BACKBONE.PRETRAINED file {path} is a TorchScript archive, and loading one can run code; "
                "set MODEL.BACKBONE.ALLOW_TORCHSCRIPT True if you trust the file")
        state_dict, openai_format = torch.jit.load(str(path), map_location="cpu").state_dict(), True
    else:
        try:
            state_dict = _open_clip_state_dict(str(path), weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(
                f"MODEL.BACKBONE.PRETRAINED file {path} is not a plain tensor checkpoint: it needs code to load "
                f"({str(exc).splitlines()[0][:160]}); load only files you trust") from None
        except Exception as exc:  # noqa: BLE001  (torch.load of a damaged file raises many kinds)
            raise CheckpointError(
                f"MODEL.BACKBONE.PRETRAINED file {path} is truncated or not a torch file "
                f"({(str(exc).splitlines() or [type(exc).__name__])[0][:160]}); expected CLIP weights") from None
        if not isinstance(state_dict, dict) or not all(hasattr(v, "shape") for v in state_dict.values()):
            raise CheckpointError(f"MODEL.BACKBONE.PRETRAINED file {path} holds no state dict of tensors; "
                                  "expected CLIP weights")
        openai_format = _looks_openai(state_dict)
    # Building the architecture and copying the weights keeps fp32, whereas open_clip's
    # build_model_from_openai_state_dict rounds every weight through fp16.
    with _drop_root_log("No pretrained weights loaded"):  # untrue here: they are loaded next
        model = open_clip.create_model(arch, force_quick_gelu=quick_gelu or openai_format)
    # TorchScript saves non-persistent buffers (open_clip's attn_mask) too.
    unsaved_buffers = {name for name, _ in model.named_buffers()} - set(model.state_dict())
    state_dict = {k: v for k, v in state_dict.items() if k not in _OPENAI_META_KEYS and k not in unsaved_buffers}
    if "positional_embedding" in state_dict and not hasattr(model, "positional_embedding"):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(f"Checkpoint {path} does not match architecture {arch!r}: {err}") from err
    return model


@contextlib.contextmanager
def _drop_root_log(prefix):
    class DropPrefix(logging.Filter):
        def filter(self, record):
            return not record.getMessage().startswith(prefix)

    root, drop = logging.getLogger(), DropPrefix()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _is_torchscript(path):
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def _looks_openai(state_dict):
    # OpenAI's key names equal open_clip's CLIP names; what gives OpenAI files away is the
    # metadata entries of their TorchScript state dict, or fp16 projections (clip.build_model).
    if any(k in state_dict for k in _OPENAI_META_KEYS):
        return True
    projection = state_dict.get("text_projection")
    return projection is not None and projection.dtype == torch.float16


def _hf_cached_file(cfg, cache_dir):
    """Path of the tag's weights in the Hugging Face cache, without touching the network."""
    if not cfg.get("hf_hub"):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id, filename = os.path.split(cfg["hf_hub"])
    # open_clip looks for the safetensors variant first
    if not filename or filename == "open_clip_pytorch_model.bin":
        candidates = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    else:
        candidates = [str(Path(filename).with_suffix(".safetensors")), filename]
    for candidate in candidates:
        found = try_to_load_from_cache(repo_id, candidate, cache_dir=cache_dir or None)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _offline_reason(cfg):
    """Why a download cannot work, or None. Never blocks for more than a few seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    host, port, tls = _download_endpoint(cfg)
    if not _reachable(host, port, tls):
        return f"{host}:{port} is not reachable"
    return None


def _download_endpoint(cfg):
    url = cfg.get("url", "")
    if cfg.get("hf_hub"):
        try:
            from huggingface_hub import constants
            url = constants.ENDPOINT
        except ImportError:
            pass
    host = urllib.parse.urlparse(url).hostname or "huggingface.co"
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else "http://" + proxy)
        return parsed.hostname, parsed.port or 80, False
    return host, 443, True


def _reachable(host, port, tls):
    # A thread bounds the whole probe: socket timeouts do not cover DNS resolution.
    # The TLS handshake catches sandboxes that accept every TCP connection and answer nothing.
    ok = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S) as sock:
                if tls:
                    context = ssl.create_default_context()
                    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                    context.wrap_socket(sock, server_hostname=host).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_S)
    return bool(ok)
