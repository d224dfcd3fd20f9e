"""The demo benchmark (scripts/demo.sh, docs/demo.md).

:func:`make_demo_data` writes a harder PACS benchmark than make_synthetic_data, built so that zero-shot
CLIP, fine-tuning and open-set detection all have room to differ (docs/demo.md explains the design):

- class = hue (the cue the toy backbone learns) + shape (ID_OBJECTS). The seven hues sit in a band
  of the colour wheel (DEMO_HUE_START .. +DEMO_HUE_BAND, DEMO_HUE_SPACING apart, hue jitter
  DEMO_HUE_SD), so neighbouring classes' colours overlap a little;
- the pretraining pool (``root/pretrain/PACS``, source styles only) draws each class at its hue; the
  benchmark (all four domains) draws it DEMO_LABEL_SHIFT class spacings further on: the benchmark's
  classes are drawn a little differently from the captioned pretraining images, so zero-shot CLIP
  mislabels the images near a class boundary and few-shot fine-tuning on the sources can learn the
  difference (source val is not saturated);
- styles: photo (shaded, textured object on a muted gradient), cartoon (flat colour, black outline),
  sketch (coloured-pencil outline and hatching on white paper) are the sources; the held-out
  art_painting shares the object colour only partly: varnished (DEMO_VARNISH of the colour replaced
  by its sepia tone), brush texture on a background of random brush strokes, lower contrast, blur
  and canvas grain;
- the open-set sets are painted in the held-out style too, so they differ from the ID test images by
  their content only: Caltech-101 (near) = new shapes close to the ID ones (octagon, star, trapezoid,
  half disc, crescent, arrow, hexagon, bow tie) in the warm hues outside the ID band; Food-101 (mid)
  = dishes on plates; DTD (far) = whole-image textures.

It shares the drawing helpers of :mod:`croft.testing.render` and the writers of
:mod:`croft.testing.synthetic` but never changes what :func:`~croft.testing.synthetic.make_synthetic_data` writes.
"""
import colorsys
import math
import os
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..data.splits import DEFAULT_SEED, DEFAULT_VAL_FRACTION, write_domain_splits
from .render import (_blend, _fresh_dir, _gradient, _muted, _outline, _render_dish, _render_texture, _rng, _save,
                     _shape_mask, _smooth_noise, _to_image)
from .synthetic import DTD_CLASSES, FOOD_CLASSES, ID_OBJECTS, PACS_CLASSES, PACS_DOMAINS, _write_class_folders

DEMO_HOLDOUT = "art_painting"
DEMO_SOURCES = ("cartoon", "photo", "sketch")
# ID classes in hue order, from DEMO_HUE_START (green-yellow) to magenta.
DEMO_HUE_ORDER = ("dog", "giraffe", "horse", "person", "elephant", "house", "guitar")
DEMO_HUE_START = 0.22
DEMO_HUE_BAND = 0.64
DEMO_HUE_SPACING = DEMO_HUE_BAND / len(DEMO_HUE_ORDER)
DEMO_HUE_SD = 0.025
DEMO_LABEL_SHIFT = 0.3  # benchmark hue = pretraining hue + DEMO_LABEL_SHIFT * DEMO_HUE_SPACING
DEMO_VARNISH = 0.35
# Caltech-101 folder (real folder names, none of them excluded for PACS) -> (shape, hue outside the ID band)
DEMO_UNSEEN = {
    "stop_sign": ("octagon", 0.96),
    "starfish": ("star5", 0.985),
    "pyramid": ("trapezoid", 0.01),
    "umbrella": ("half_disc", 0.035),
    "yin_yang": ("crescent", 0.06),
    "anchor": ("arrow", 0.085),
    "soccer_ball": ("hexagon", 0.11),
    "butterfly": ("bowtie", 0.135),
}
DEMO_DEFAULTS = {"per_class_domain": 30, "ood_per_class": 24, "pretrain_per_class_domain": 40}
_CARTOON_PAPER = ((255, 240, 200), (200, 240, 255), (220, 255, 210), (255, 215, 235))


def demo_hue(cls, benchmark=True):
    """The hue (in [0, 1)) of ID class ``cls``: in the benchmark, or in the pretraining pool."""
    hue = DEMO_HUE_START + DEMO_HUE_ORDER.index(cls) * DEMO_HUE_SPACING
    return (hue + (DEMO_LABEL_SHIFT * DEMO_HUE_SPACING if benchmark else 0.0)) % 1.0


def _demo_colour(hue, rng):
    """An RGB colour of hue ``hue`` ± DEMO_HUE_SD, saturation 0.6-0.95, value 0.65-0.95."""
    h = (hue + rng.normal(0, DEMO_HUE_SD)) % 1.0
    return np.asarray(colorsys.hsv_to_rgb(h, rng.uniform(0.6, 0.95), rng.uniform(0.65, 0.95))) * 255.0


def _varnish(arr, amount):
    """Replace ``amount`` of every pixel's colour by its sepia tone (same luminance)."""
    lum = arr @ np.array([0.299, 0.587, 0.114])
    return (1 - amount) * arr + amount * lum[..., None] * np.array([1.07, 0.9, 0.62])


def _brush_strokes(size, rng, n=30):
    canvas = Image.new("RGB", (size, size), tuple(int(v) for v in _muted(rng)))
    draw = ImageDraw.Draw(canvas)
    for _ in range(n):
        x, y = rng.uniform(0, size, 2)
        dx, dy = rng.uniform(-size / 3, size / 3, 2)
        draw.line([(x, y), (x + dx, y + dy)], fill=tuple(int(v) for v in _muted(rng)), width=int(rng.integers(2, 6)))
    return np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float64)


def _painted_finish(arr, rng):
    """The held-out style's finish: contrast 0.75, Gaussian blur 1 px, canvas grain."""
    mean = arr.mean()
    arr = mean + 0.75 * (arr - mean)
    arr = np.asarray(_to_image(arr).filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float64)
    return arr + rng.normal(0, 6, arr.shape)


def _render_demo(style, shape, hue, size, rng):
    """One object of ``shape`` and (jittered) ``hue`` in a demo style (source or held-out)."""
    colour = _demo_colour(hue, rng)
    mask = _shape_mask(shape, size, rng, scale=(0.26, 0.38), jitter=0.12, max_rotation=0.5)
    if style == "photo":
        bg = _gradient(size, _muted(rng), _muted(rng), rng.uniform(0, 2 * math.pi)) + 18 * _smooth_noise(rng, size, 6)
        shade = 0.8 + 0.4 * _gradient(size, (0,), (1,), rng.uniform(0, 2 * math.pi))
        fg = colour * shade * (1 + 0.18 * _smooth_noise(rng, size, 12))
        return _blend(bg, fg, mask) + rng.normal(0, 5, (size, size, 3))
    if style == "cartoon":
        bg = np.broadcast_to(np.asarray(_CARTOON_PAPER[int(rng.integers(len(_CARTOON_PAPER)))], float), (size, size, 3))
        fg = np.clip(1.15 * (colour - colour.mean()) + colour.mean(), 0, 255)
        return _blend(_blend(bg, fg, mask), np.zeros(3), _outline(mask, 3))
    if style == "sketch":
        ys, xs = np.mgrid[0:size, 0:size]
        angle = rng.uniform(0, math.pi)
        stripes = np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * 2 * math.pi / rng.uniform(4, 7)) > 0.6
        pencil = np.clip(_outline(mask, 3) + 0.5 * stripes * mask, 0, 1)
        paper = np.full((size, size, 3), 246.0) + rng.normal(0, 3, (size, size, 1))
        return _blend(paper, 0.6 * colour, pencil)
    if style == "art_painting":
        fg = _varnish(np.broadcast_to(colour, (size, size, 3)), DEMO_VARNISH)
        fg = fg + 40 * _smooth_noise(rng, size, 16, 3) + rng.normal(0, 12, (size, size, 3))
        return _painted_finish(_blend(_brush_strokes(size, rng), fg, mask), rng)
    raise ValueError(f"unknown demo style '{style}'")


def _render_demo_unseen(arg, size, rng):
    shape, hue = arg
    return _render_demo(DEMO_HOLDOUT, shape, hue, size, rng)


def _render_demo_texture(cls, size, rng):
    return _painted_finish(_varnish(_render_texture(cls, size, rng), DEMO_VARNISH), rng)


def _render_demo_dish(cls, size, rng):
    return _painted_finish(_varnish(_render_dish(cls, size, rng), DEMO_VARNISH), rng)


def _write_demo_pacs(root, seed, n, size, domains, benchmark):
    dataset_dir = os.path.join(root, "PACS")
    _fresh_dir(dataset_dir)
    for domain in domains:
        for cls in PACS_CLASSES:
            folder = os.path.join(dataset_dir, "images", domain, cls)
            os.makedirs(folder)
            shape, hue = ID_OBJECTS[cls][0], demo_hue(cls, benchmark)
            for i in range(n):
                rng = _rng(seed, "demo", "benchmark" if benchmark else "pretrain", domain, cls, i)
                _save(_render_demo(domain, shape, hue, size, rng), os.path.join(folder, f"{cls}_{i:04d}.jpg"))
    if benchmark:
        write_domain_splits(dataset_dir, DEFAULT_VAL_FRACTION, DEFAULT_SEED)
    return dataset_dir


def make_demo_data(root, seed=0, per_class_domain=DEMO_DEFAULTS["per_class_domain"],
                   ood_per_class=DEMO_DEFAULTS["ood_per_class"],
                   pretrain_per_class_domain=DEMO_DEFAULTS["pretrain_per_class_domain"], image_size=64):
    """Write the demo benchmark under ``root`` (see the comment above and docs/demo.md)::

        PACS/images/{art_painting,cartoon,photo,sketch}/<class>/*.jpg + PACS/test_on_<domain>.json
        dtd/, food-101/, caltech-101/ (the open-set sets, CoOp layouts, painted in the held-out style)
        pretrain/PACS/images/{cartoon,photo,sketch}/<class>/*.jpg  (the pretraining pool: source
            styles only, other images than the benchmark's, each class at its pretraining hue)

    Returns ``{name: path}`` (``pretrain`` for the pool). Deterministic: the same arguments write the
    same bytes. :func:`make_synthetic_data` and its defaults are unaffected.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if min(per_class_domain, ood_per_class, pretrain_per_class_domain) < 1:
        raise ValueError("per_class_domain, ood_per_class and pretrain_per_class_domain must be >= 1")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    os.makedirs(os.path.join(root, "pretrain"), exist_ok=True)
    out = {"PACS": _write_demo_pacs(root, seed, per_class_domain, image_size, PACS_DOMAINS, benchmark=True)}
    out["dtd"] = _write_class_folders(
        root, "dtd", "images", "split_zhou_DescribableTextures.json", [(c, c, c) for c in DTD_CLASSES],
        _render_demo_texture, seed, ood_per_class, image_size, lambda folder, i: f"{folder}_{i + 1:04d}.jpg")
    out["food-101"] = _write_class_folders(
        root, "food-101", "images", "split_zhou_Food101.json", [(c, c, c) for c in FOOD_CLASSES],
        _render_demo_dish, seed, ood_per_class, image_size,
        lambda folder, i: f"{100000 + 7919 * i + zlib.crc32(folder.encode()) % 1000}.jpg")
    out["caltech-101"] = _write_class_folders(
        root, "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json",
        [(f, f, DEMO_UNSEEN[f]) for f in sorted(DEMO_UNSEEN)], _render_demo_unseen, seed, ood_per_class,
        image_size, lambda folder, i: f"image_{i + 1:04d}.jpg")
    out["pretrain"] = _write_demo_pacs(os.path.join(root, "pretrain"), seed, pretrain_per_class_domain, image_size,
                                       DEMO_SOURCES, benchmark=False)
    return out
