"""CLIP image transforms built from the config (never from open_clip's defaults).

Train: RandomResizedCrop + horizontal flip + normalize; test: resize (shorter side) + centre
crop + normalize (docs/method.md §7.1).
"""
from torchvision import transforms as T

from ..config import ConfigError

_INTERPOLATION = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}
KNOWN_TRANSFORMS = ("random_resized_crop", "random_flip", "center_crop", "normalize")


def _interpolation(cfg):
    try:
        return _INTERPOLATION[cfg.INPUT.INTERPOLATION]
    except KeyError:
        raise ConfigError(f"invalid value for 'INPUT.INTERPOLATION': {cfg.INPUT.INTERPOLATION!r}; "
                          f"expected one of {sorted(_INTERPOLATION)}") from None


def _check_names(names):
    unknown = [n for n in names if n not in KNOWN_TRANSFORMS]
    if unknown:
        raise ConfigError(f"invalid value for 'INPUT.TRANSFORMS': unknown transform(s) {unknown}; "
                          f"expected names from {list(KNOWN_TRANSFORMS)}")


def build_transform(cfg, is_train):
    names = list(cfg.INPUT.TRANSFORMS)
    _check_names(names)
    size = tuple(cfg.INPUT.SIZE)
    interp = _interpolation(cfg)
    ops = []
    if is_train and "random_resized_crop" in names:
        ops.append(T.RandomResizedCrop(size, scale=tuple(cfg.INPUT.RRCROP_SCALE), interpolation=interp))
    else:
        ops += [T.Resize(max(size), interpolation=interp), T.CenterCrop(size)]
    if is_train and "random_flip" in names:
        ops.append(T.RandomHorizontalFlip(0.5))
    ops.append(T.ToTensor())
    if "normalize" in names or not names:
        ops.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
    return T.Compose(ops)
