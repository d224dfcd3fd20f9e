"""Reading images, seeded augmentation views, and the epoch-seeded training batch order.

Reproducible augmentation. The random training transform of image ``i`` in epoch ``e`` is drawn
from its own generator, seeded by ``(augmentation seed, view, image path)`` with
``view = e mod CACHE.TRAIN_VIEWS`` (``-1`` = MAX_EPOCH, so every epoch sees a fresh view). The
shuffle order of epoch ``e`` comes from a generator seeded by ``(SEED, e)``. Neither touches the
global torch RNG, and neither depends on the number of loader workers. So the cached pipeline
(features of view ``v`` computed once and read back, :mod:`croft.data.feature_cache`) and the
online pipeline (``CACHE.ENABLED False``) see the same pixels in the same batches, and their
results agree within float tolerance. The augmentation seed is ``SEED`` (0 for unseeded runs,
``SEED -1``, whose shuffle order stays random); open-set images that the reference protocol
encodes with the training transform use view 0.
"""
import hashlib
import os

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler


#: 16-bit single-channel modes: values 0 .. 65535.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
#: Formats whose mode ``I`` images are 16-bit (PIL widens 16-bit grayscale PNG and PGM, any maxval, to I).
SIXTEEN_BIT_I_FORMATS = ("PNG", "PPM")


class ImageModeError(ValueError):
    """An image whose pixel values have no defined 8-bit meaning (mode, value range)."""


def to_rgb(img):
    """``img`` as an 8-bit RGB image.

    ``convert("RGB")`` clips wide single-channel modes at 255, so a 16-bit image reads as nearly
    all white. Those are converted here instead: 16-bit images (``I;16*``, and ``I`` from a PNG or
    PGM) are scaled to 8 bit (``round(v / 257)``); other ``I`` and ``F`` images are kept only when
    every value already is an 8-bit value (an integer in 0 .. 255), else :class:`ImageModeError`.
    Every other mode (``RGB``, ``L``, ``P``, ``LA``, ``RGBA``, ``CMYK``, ``1``, ...) goes through
    ``convert("RGB")`` as before.
    """
    mode = img.mode
    if mode not in SIXTEEN_BIT_MODES and mode not in ("I", "F"):
        return img.convert("RGB")
    import numpy as np

    values = np.asarray(img)
    if mode in SIXTEEN_BIT_MODES or (mode == "I" and img.format in SIXTEEN_BIT_I_FORMATS):
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageModeError(f"16-bit image (mode {mode}, {img.format or 'in memory'}) with values from "
                                 f"{values.min()} to {values.max()}; expected values in 0 .. 65535")
        eight = np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)
        return Image.fromarray(eight, mode="L").convert("RGB")
    if values.size and not (values.min() >= 0 and values.max() <= 255 and np.array_equal(values, np.rint(values))):
        kind = "32-bit integer" if mode == "I" else "floating-point"
        raise ImageModeError(f"{kind} image (mode {mode}) with values from {values.min():g} to {values.max():g}: "
                             "their 8-bit meaning is not defined; expected an 8- or 16-bit image (convert it to "
                             "8 bit first)")
    return img.convert("RGB")


def read_image(path):
    try:
        with Image.open(path) as img:
            return to_rgb(img)
    except ImageModeError as exc:
        raise OSError(f"unsupported image {path}: {exc}") from None
    except (OSError, ValueError) as exc:  # e.g. a file truncated after its header
        raise OSError(f"unreadable image {path} ({exc.__class__.__name__}: {str(exc)[:120]}); expected an image "
                      "file that PIL can open") from None


def is_random_transform(transform):
    """Whether ``transform`` (a torchvision ``Compose`` or a single op) draws random numbers."""
    ops = getattr(transform, "transforms", [transform])
    return any(type(op).__name__.startswith("Random") for op in ops)


def derive_seed(*parts):
    """A 63-bit seed from any printable parts (stable across processes and Python versions)."""
    text = "\0".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & ((1 << 63) - 1)


def view_seed(aug_seed, view, impath):
    """Seed of the augmentation of view ``view`` of the image at ``impath``."""
    return derive_seed("view", aug_seed, view, os.path.abspath(impath))


def load_view(impath, transform, seed=None):
    """Read an image and apply ``transform``; a random transform draws from a generator seeded by ``seed``.

    The global CPU RNG state is saved and restored around the call, so it is left untouched.
    """
    img = read_image(impath)
    if seed is None:
        return transform(img)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return transform(img)


def augmentation_seed(cfg):
    return cfg.SEED if cfg.SEED >= 0 else 0


def num_train_views(cfg):
    views = cfg.CACHE.TRAIN_VIEWS
    if views == -1:
        return max(int(cfg.OPTIM.MAX_EPOCH), 1)
    if views < 1:
        raise ValueError(f"invalid value for 'CACHE.TRAIN_VIEWS': {views}; expected -1 (= OPTIM.MAX_EPOCH) or >= 1")
    return int(views)


class DatumDataset(Dataset):
    """Images of ``items`` through ``transform``.

    An index is ``i`` (view ``view``) or a pair ``(i, view)`` (what :class:`EpochBatchSampler`
    yields). Random transforms are seeded per (augmentation seed, view, image) via :func:`view_seed`.
    """

    def __init__(self, items, transform, aug_seed=0, view=0):
        self.items = items
        self.transform = transform
        self.aug_seed = aug_seed
        self.view = view
        self.random = is_random_transform(transform)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        index, view = key if isinstance(key, tuple) else (key, self.view)
        item = self.items[index]
        seed = view_seed(self.aug_seed, view, item.impath) if self.random else None
        return {"img": load_view(item.impath, self.transform, seed), "label": item.label,
                "domain": item.domain, "impath": item.impath, "index": index}


class EpochBatchSampler(Sampler):
    """Shuffled batches of ``(index, view)`` pairs; call :meth:`set_epoch` before each epoch.

    The order of epoch ``e`` is a permutation drawn from a generator seeded by ``(seed, e)``; the
    view is ``e mod num_views``. Shared by the online loader and the cached feature loader.
    """

    def __init__(self, num_items, batch_size, drop_last, seed, num_views):
        self.num_items = num_items
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.seed = seed
        self.num_views = num_views
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    @property
    def view(self):
        return self.epoch % self.num_views

    def order(self):
        generator = torch.Generator()
        generator.manual_seed(derive_seed("shuffle", self.seed, self.epoch))
        return torch.randperm(self.num_items, generator=generator).tolist()

    def __iter__(self):
        order, view, size = self.order(), self.view, self.batch_size
        for start in range(0, self.num_items, size):
            batch = order[start:start + size]
            if len(batch) < size and self.drop_last:
                break
            yield [(i, view) for i in batch]

    def __len__(self):
        if self.drop_last:
            return self.num_items // self.batch_size
        return -(-self.num_items // self.batch_size)
