"""Small synthetic image datasets in the real on-disk layouts (docs/method.md §7.6).

:func:`make_synthetic_data` writes, under ``root``::

    PACS/images/{art_painting,cartoon,photo,sketch}/<class>/*.jpg + PACS/test_on_<domain>.json
    VLCS/images/{CALTECH,LABELME,PASCAL,SUN}/<class>/*.jpg      + VLCS/test_on_<domain>.json
    dtd/images/<class>/*.jpg             + dtd/split_zhou_DescribableTextures.json
    food-101/images/<class>/*.jpg        + food-101/split_zhou_Food101.json
    caltech-101/101_ObjectCategories/<folder>/*.jpg + caltech-101/split_zhou_Caltech101.json
    imagenet/classnames.txt + imagenet/images/{train,val}/<wnid>/*.JPEG  (10 classes)
    imagenetv2/imagenetv2-matched-frequency-format-val/<0..9>/*.jpg
    imagenet-sketch/images/<wnid>/*.jpg
    imagenet-adversarial/imagenet-a/<wnid>/*.jpg + README.txt   (7 of the 10 classes)
    imagenet-rendition/imagenet-r/<wnid>/*.jpg + README.txt      (7 of the 10 classes)

Design, so that a small model can learn the data and tests can check open-set detection:

- every ID class has its own shape and colour (``ID_OBJECTS``), every domain its own rendering
  style (photo = textured object on a natural gradient, sketch = dark outline on white paper,
  cartoon = flat saturated colours with a black outline, art_painting = noisy brush strokes; VLCS:
  CALTECH = centred object on white, LABELME = small object in an outdoor scene, PASCAL = object in
  clutter, SUN = dark noisy scene);
- the open-set sets look unlike every ID class: DTD = whole-image textures (stripes, checkers, dots,
  marble, zigzags), Food-101 = round dishes on plates, Caltech-101 = other shapes (stars, rings,
  crescents, arrows, ...) in muted colours;
- Caltech-101 includes classes that the exclusion lists of ``croft.data.datasets.openset`` drop
  (``dalmatian``, ``face`` in folder ``Faces``, ``electric_guitar``, ``elephant``, ``chair``,
  ``car_side``) and the three folders that the reference drops by accident (``airplanes``,
  ``Leopards``, ``Motorbikes``, renamed in the zhou split as in CoOp);
- ImageNet: every class has its own shape and colour (``IMAGENET_OBJECTS``); train/val and V2
  are "photo" renderings, Sketch the "sketch" style, A the cluttered "PASCAL" style and R the
  "cartoon" style; A and R hold 7 of the 10 classes (different ones) and a ``README.txt``, as
  the real downloads do;
- every image comes from a NumPy generator seeded by (seed, dataset, domain, class, index) and is
  written as a baseline JPEG, so a rerun writes the same bytes.

Each dataset has its own ``write_*`` function with the signature ``(root, seed, n, image_size)``;
``WRITERS`` lists them in order.

:func:`make_demo_data` writes a separate, harder benchmark for ``scripts/demo.sh`` (PACS with
art_painting held out, open-set sets painted in the held-out style, and a captioned pretraining pool
of the source styles); see the comment above it and docs/demo.md. It shares the helpers but never
changes what :func:`make_synthetic_data` writes.
A dataset folder written here carries a ``.croft_synthetic`` marker; rewriting replaces such a
folder, and a folder without the marker is never touched (FileExistsError).
"""
import colorsys
import json
import math
import os
import shutil
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .splits import DEFAULT_SEED, DEFAULT_VAL_FRACTION, num_val, write_domain_splits

MARKER = ".croft_synthetic"
JPEG_QUALITY = 90

PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
PACS_CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
VLCS_DOMAINS = ("CALTECH", "LABELME", "PASCAL", "SUN")
VLCS_CLASSES = ("bird", "car", "chair", "dog", "person")
DTD_CLASSES = ("banded", "chequered", "dotted", "marbled", "zigzagged")
FOOD_CLASSES = ("apple_pie", "pizza", "ramen", "sushi", "waffles")
# Caltech-101 folder -> (zhou class name, shape). Folder names follow the real dataset.
CALTECH_FOLDERS = {
    "accordion": ("accordion", "zigzag"),
    "airplanes": ("airplane", "bowtie"),
    "anchor": ("anchor", "arrow"),
    "barrel": ("barrel", "ring"),
    "car_side": ("car_side", "half_disc"),
    "chair": ("chair", "crescent"),
    "dalmatian": ("dalmatian", "star5"),
    "electric_guitar": ("electric_guitar", "star6"),
    "elephant": ("elephant", "star7"),
    "Faces": ("face", "star8"),
    "Leopards": ("leopard", "double_ring"),
    "Motorbikes": ("motorbike", "hex_ring"),
}

# ID class -> (shape, RGB colour). Classes shared by PACS and VLCS look the same in both.
ID_OBJECTS = {
    "dog": ("circle", (240, 140, 20)),
    "elephant": ("square", (70, 95, 175)),
    "giraffe": ("triangle", (235, 210, 30)),
    "guitar": ("figure8", (190, 25, 40)),
    "horse": ("diamond", (40, 150, 60)),
    "house": ("house", (140, 60, 180)),
    "person": ("plus", (30, 185, 200)),
    "bird": ("triangle", (235, 210, 30)),
    "car": ("wide_rect", (190, 25, 40)),
    "chair": ("ell", (140, 60, 180)),
}


# ------------------------------------------------------------------ deterministic randomness

def _key(*parts):
    """A NumPy seed sequence from ints and strings (crc32, stable across runs and platforms)."""
    return [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]


def _rng(*parts):
    return np.random.default_rng(_key(*parts))


# ------------------------------------------------------------------ shapes

def _circle(cx, cy, r, n=40):
    return [(cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _regular(n, r=1.0, phase=-math.pi / 2):
    return [(r * math.cos(phase + 2 * math.pi * k / n), r * math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


def _star(n, inner=0.45):
    pts = []
    for k in range(2 * n):
        r = 1.0 if k % 2 == 0 else inner
        a = -math.pi / 2 + math.pi * k / n
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _unit_shape(shape):
    """A shape in unit coordinates: a list of (fill 255 = paint / 0 = erase, polygon)."""
    if shape == "circle":
        return [(255, _circle(0, 0, 0.95))]
    if shape == "square":
        return [(255, [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)])]
    if shape == "triangle":
        return [(255, [(0, -1.05), (1.0, 0.8), (-1.0, 0.8)])]
    if shape == "figure8":
        return [(255, _circle(0, -0.5, 0.45)), (255, _circle(0, 0.38, 0.62))]
    if shape == "diamond":
        return [(255, [(0, -1.1), (0.7, 0), (0, 1.1), (-0.7, 0)])]
    if shape == "house":
        return [(255, [(-0.8, 1.0), (0.8, 1.0), (0.8, -0.1), (0, -1.0), (-0.8, -0.1)])]
    if shape == "plus":
        w = 0.3
        return [(255, [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w),
                       (-1, w), (-1, -w), (-w, -w)])]
    if shape == "wide_rect":
        return [(255, [(-1.0, -0.45), (1.0, -0.45), (1.0, 0.45), (-1.0, 0.45)])]
    if shape == "ell":
        return [(255, [(-0.8, -1.0), (-0.25, -1.0), (-0.25, 0.45), (0.8, 0.45), (0.8, 1.0), (-0.8, 1.0)])]
    if shape.startswith("star"):
        return [(255, _star(int(shape[4:])))]
    if shape == "ring":
        return [(255, _circle(0, 0, 0.95)), (0, _circle(0, 0, 0.55))]
    if shape == "hex_ring":
        return [(255, _regular(6, 1.0)), (0, _regular(6, 0.6))]
    if shape == "double_ring":
        return [(255, _circle(-0.5, 0, 0.5)), (0, _circle(-0.5, 0, 0.25)),
                (255, _circle(0.5, 0, 0.5)), (0, _circle(0.5, 0, 0.25))]
    if shape == "crescent":
        return [(255, _circle(0, 0, 0.95)), (0, _circle(0.45, -0.15, 0.8))]
    if shape == "half_disc":
        return [(255, [(0.95 * math.cos(math.pi * k / 20), 0.5 - 0.95 * math.sin(math.pi * k / 20))
                       for k in range(21)])]
    if shape == "arrow":
        return [(255, [(-1, -0.2), (0.2, -0.2), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.2), (-1, 0.2)])]
    if shape == "bowtie":
        return [(255, [(-1, -0.8), (0, 0), (-1, 0.8)]), (255, [(1, -0.8), (0, 0), (1, 0.8)])]
    if shape == "zigzag":
        top = [(-1 + 0.5 * k, -0.3 + (0.35 if k % 2 else -0.35)) for k in range(5)]
        bottom = [(x, y + 0.55) for x, y in reversed(top)]
        return [(255, top + bottom)]
    # shapes of the demo benchmark's unseen classes (make_demo_data)
    if shape == "octagon":
        return [(255, _regular(8, 0.95, phase=math.pi / 8))]
    if shape == "hexagon":
        return [(255, _regular(6, 0.95))]
    if shape == "trapezoid":
        return [(255, [(-0.45, -0.7), (0.45, -0.7), (1.0, 0.8), (-1.0, 0.8)])]
    raise ValueError(f"unknown synthetic shape '{shape}'")


def _shape_mask(shape, size, rng, scale=(0.30, 0.38), jitter=0.08, max_rotation=0.25):
    """Anti-aliased float mask in [0, 1] of a jittered, rotated, scaled shape."""
    big = 2 * size
    r = big * rng.uniform(*scale)
    cx = big / 2 + big * rng.uniform(-jitter, jitter)
    cy = big / 2 + big * rng.uniform(-jitter, jitter)
    angle = rng.uniform(-max_rotation, max_rotation)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    for fill, poly in _unit_shape(shape):
        pts = [(cx + r * (x * cos_a - y * sin_a), cy + r * (x * sin_a + y * cos_a)) for x, y in poly]
        draw.polygon(pts, fill=fill)
    img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float64) / 255.0


def _outline(mask, width=3):
    """The band of ``mask`` within ``width`` pixels of its edge (inside and outside)."""
    img = Image.fromarray((mask * 255).astype(np.uint8))
    grown = np.asarray(img.filter(ImageFilter.MaxFilter(width)), dtype=np.float64) / 255.0
    shrunk = np.asarray(img.filter(ImageFilter.MinFilter(width)), dtype=np.float64) / 255.0
    return np.clip(grown - shrunk, 0.0, 1.0)


# ------------------------------------------------------------------ pixel helpers

def _smooth_noise(rng, size, cells, channels=1):
    """Smooth noise in [-1, 1]: ``cells``×``cells`` random values upsampled bicubically."""
    out = []
    for _ in range(channels):
        low = (rng.uniform(0, 255, (cells, cells))).astype(np.uint8)
        img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
        out.append(np.asarray(img, dtype=np.float64) / 127.5 - 1.0)
    return np.stack(out, axis=-1)


def _gradient(size, c1, c2, angle):
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = np.clip(0.5 + (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle), 0, 1)[..., None]
    return np.asarray(c1, dtype=np.float64) * (1 - t) + np.asarray(c2, dtype=np.float64) * t


def _blend(bg, fg, mask):
    m = mask[..., None]
    return bg * (1 - m) + fg * m


def _to_image(arr):
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def _muted(rng):
    return rng.uniform(70, 190, 3)


# ------------------------------------------------------------------ ID rendering styles

def _render_id(style, shape, colour, size, rng):
    colour = np.asarray(colour, dtype=np.float64)
    if style == "photo":
        mask = _shape_mask(shape, size, rng)
        bg = _gradient(size, _muted(rng), _muted(rng), rng.uniform(0, 2 * math.pi))
        bg = bg + 18 * _smooth_noise(rng, size, 6)
        shade = 0.8 + 0.4 * _gradient(size, (0,), (1,), rng.uniform(0, 2 * math.pi))
        fg = colour * shade * (1 + 0.18 * _smooth_noise(rng, size, 12))
        return _blend(bg, fg, mask) + rng.normal(0, 5, (size, size, 3))
    if style == "sketch":
        mask = _shape_mask(shape, size, rng)
        ink = _outline(mask, 3)
        paper = 246 + rng.normal(0, 3, (size, size, 1))
        arr = paper * (1 - ink[..., None]) + rng.uniform(25, 60) * ink[..., None]
        return np.repeat(arr, 3, axis=-1)
    if style == "cartoon":
        mask = _shape_mask(shape, size, rng)
        palette = [(255, 240, 200), (200, 240, 255), (220, 255, 210), (255, 215, 235)]
        bg = np.broadcast_to(np.asarray(palette[int(rng.integers(len(palette)))], float), (size, size, 3))
        fg = np.clip(1.15 * (colour - colour.mean()) + colour.mean(), 0, 255)
        arr = _blend(bg, fg, mask)
        return _blend(arr, np.zeros(3), _outline(mask, 3))
    if style == "art_painting":
        mask = _shape_mask(shape, size, rng)
        canvas = Image.new("RGB", (size, size), tuple(int(v) for v in _muted(rng)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(30):
            x, y = rng.uniform(0, size, 2)
            dx, dy = rng.uniform(-size / 3, size / 3, 2)
            draw.line([(x, y), (x + dx, y + dy)], fill=tuple(int(v) for v in _muted(rng)),
                      width=int(rng.integers(2, 6)))
        bg = np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float64)
        fg = colour + 40 * _smooth_noise(rng, size, 16, 3) + rng.normal(0, 12, (size, size, 3))
        arr = _blend(bg, fg, mask)
        return np.asarray(_to_image(arr).filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float64)
    # VLCS styles
    if style == "CALTECH":
        mask = _shape_mask(shape, size, rng, scale=(0.36, 0.42), jitter=0.03)
        return _blend(np.full((size, size, 3), 250.0), colour, mask) + rng.normal(0, 3, (size, size, 3))
    if style == "LABELME":
        mask = _shape_mask(shape, size, rng, scale=(0.20, 0.27), jitter=0.2)
        horizon = rng.uniform(0.4, 0.6)
        ys = (np.arange(size) / (size - 1))[:, None, None]
        sky = _gradient(size, (110, 160, 230), (190, 215, 245), math.pi / 2)
        ground = _gradient(size, (90, 130, 60), (120, 95, 60), rng.uniform(0, math.pi))
        bg = np.where(ys < horizon, sky, ground) + 10 * _smooth_noise(rng, size, 8)
        return _blend(bg, colour * (1 + 0.1 * _smooth_noise(rng, size, 8)), mask) + rng.normal(0, 4, (size, size, 3))
    if style == "PASCAL":
        mask = _shape_mask(shape, size, rng, scale=(0.27, 0.34), jitter=0.1)
        canvas = Image.new("RGB", (size, size), tuple(int(v) for v in rng.uniform(120, 170, 3)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(8):
            x0, y0 = rng.uniform(-size / 4, size, 2)
            w, h = rng.uniform(size / 8, size / 2, 2)
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=tuple(int(v) for v in rng.uniform(60, 200, 3)))
        bg = np.asarray(canvas, dtype=np.float64)
        return _blend(bg, colour * (1 + 0.15 * _smooth_noise(rng, size, 10)), mask) + rng.normal(0, 8, (size, size, 3))
    if style == "SUN":
        mask = _shape_mask(shape, size, rng, scale=(0.32, 0.40), jitter=0.06)
        bg = _gradient(size, rng.uniform(15, 45, 3), rng.uniform(40, 80, 3), rng.uniform(0, 2 * math.pi))
        bg = bg + 15 * _smooth_noise(rng, size, 10)
        return _blend(bg, 0.65 * colour, mask) + rng.normal(0, 14, (size, size, 3))
    raise ValueError(f"unknown synthetic style '{style}'")


# ------------------------------------------------------------------ OOD rendering

def _render_texture(cls, size, rng):
    c1, c2 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    a = rng.uniform(0, math.pi)
    u = xs * math.cos(a) + ys * math.sin(a)
    v = -xs * math.sin(a) + ys * math.cos(a)
    period = rng.uniform(6, 12)
    if cls == "banded":
        t = (np.sin(2 * math.pi * u / period) > 0).astype(float)
    elif cls == "chequered":
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(float)
    elif cls == "dotted":
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        t = (du ** 2 + dv ** 2 < (period / 3.2) ** 2).astype(float)
    elif cls == "marbled":
        t = 0.5 + 0.5 * np.sin(u / period * 2 + 4 * _smooth_noise(rng, size, 5)[..., 0])
    elif cls == "zigzagged":
        tri = np.abs((u / period) % 2 - 1) * period
        t = (((v + tri) / period) % 2 < 1).astype(float)
    else:
        raise ValueError(f"unknown synthetic texture '{cls}'")
    arr = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return arr + rng.normal(0, 6, (size, size, 3))


def _render_dish(cls, size, rng):
    big = 2 * size
    table = _gradient(big, rng.uniform(110, 160, 3) * (1.0, 0.8, 0.6), rng.uniform(90, 140, 3) * (1.0, 0.8, 0.6),
                      rng.uniform(0, math.pi))
    img = _to_image(table + 8 * _smooth_noise(rng, big, 4))
    draw = ImageDraw.Draw(img)
    cx, cy = big / 2 + rng.uniform(-4, 4, 2)
    rp = big * rng.uniform(0.40, 0.46)
    draw.ellipse([cx - rp, cy - rp, cx + rp, cy + rp], fill=(236, 236, 232), outline=(200, 200, 195), width=3)
    rf = rp * 0.7

    def col(base):
        return tuple(int(np.clip(b + d, 0, 255)) for b, d in zip(base, rng.normal(0, 10, 3)))

    if cls == "apple_pie":
        draw.ellipse([cx - rf, cy - rf, cx + rf, cy + rf], fill=col((200, 140, 60)))
        for k in range(-2, 3):
            off = k * rf / 3
            draw.line([(cx + off, cy - rf * 0.9), (cx + off, cy + rf * 0.9)], fill=col((150, 90, 30)), width=3)
            draw.line([(cx - rf * 0.9, cy + off), (cx + rf * 0.9, cy + off)], fill=col((150, 90, 30)), width=3)
    elif cls == "pizza":
        draw.ellipse([cx - rf, cy - rf, cx + rf, cy + rf], fill=col((225, 120, 50)))
        for _ in range(9):
            px, py = cx + rng.uniform(-0.6, 0.6) * rf, cy + rng.uniform(-0.6, 0.6) * rf
            draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=col((150, 30, 30)))
    elif cls == "ramen":
        draw.ellipse([cx - rf, cy - rf, cx + rf, cy + rf], fill=col((120, 60, 40)))
        ri = rf * 0.8
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=col((210, 170, 110)))
        for k in range(6):
            y = cy - ri * 0.6 + k * ri * 0.24
            pts = [(cx - ri * 0.7 + j * ri * 0.14, y + 3 * math.sin(j + k)) for j in range(11)]
            draw.line(pts, fill=col((250, 230, 140)), width=2)
    elif cls == "sushi":
        for k in range(3):
            px = cx + (k - 1) * rf * 0.7
            draw.rounded_rectangle([px - 8, cy - 14, px + 8, cy + 14], radius=5, fill=col((245, 245, 240)))
            draw.rectangle([px - 8, cy - 3, px + 8, cy + 3], fill=col((30, 60, 30)))
            draw.rounded_rectangle([px - 8, cy - 14, px + 8, cy - 6], radius=3, fill=col((240, 120, 80)))
    elif cls == "waffles":
        s = rf * 0.8
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=col((215, 165, 70)))
        for k in range(1, 5):
            off = -s + k * 2 * s / 5
            draw.line([(cx + off, cy - s), (cx + off, cy + s)], fill=col((160, 110, 40)), width=3)
            draw.line([(cx - s, cy + off), (cx + s, cy + off)], fill=col((160, 110, 40)), width=3)
    else:
        raise ValueError(f"unknown synthetic dish '{cls}'")
    arr = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float64)
    return arr + rng.normal(0, 4, (size, size, 3))


def _render_object(shape, size, rng):
    mask = _shape_mask(shape, size, rng, scale=(0.30, 0.38))
    bg = _gradient(size, rng.uniform(170, 215, 3), rng.uniform(150, 200, 3), rng.uniform(0, 2 * math.pi))
    colour = rng.uniform(50, 120, 3) + np.asarray([30.0, 20.0, 0.0])
    fg = colour * (1 + 0.15 * _smooth_noise(rng, size, 10))
    return _blend(bg, fg, mask) + rng.normal(0, 5, (size, size, 3))


# ------------------------------------------------------------------ writing

def _save(arr, path):
    _to_image(arr).save(path, "JPEG", quality=JPEG_QUALITY)


def _fresh_dir(path):
    """Create ``path`` for a synthetic dataset, replacing an earlier synthetic one."""
    if os.path.exists(path):
        if os.path.isfile(os.path.join(path, MARKER)):
            shutil.rmtree(path)
        elif os.path.isdir(path) and not os.listdir(path):
            pass
        else:
            raise FileExistsError(
                f"refusing to overwrite {path}: it exists and was not written by make_synthetic_data "
                f"(no {MARKER} marker); choose another --root"
            )
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("written by croft.data.synthetic.make_synthetic_data\n")


def _write_domain_dataset(root, name, domains, classes, seed, n, size):
    dataset_dir = os.path.join(root, name)
    _fresh_dir(dataset_dir)
    for domain in domains:
        for cls in classes:
            folder = os.path.join(dataset_dir, "images", domain, cls)
            os.makedirs(folder)
            shape, colour = ID_OBJECTS[cls]
            for i in range(n):
                rng = _rng(seed, name, domain, cls, i)
                _save(_render_id(domain, shape, colour, size, rng), os.path.join(folder, f"{cls}_{i:04d}.jpg"))
    write_domain_splits(dataset_dir, DEFAULT_VAL_FRACTION, DEFAULT_SEED)
    return dataset_dir


def write_pacs(root, seed=0, per_class_domain=6, image_size=64):
    """``root/PACS``: 4 domains × 7 classes × ``per_class_domain`` images + ``test_on_*.json``."""
    return _write_domain_dataset(root, "PACS", PACS_DOMAINS, PACS_CLASSES, seed, per_class_domain, image_size)


def write_vlcs(root, seed=0, per_class_domain=6, image_size=64):
    """``root/VLCS``: upper-case domain folders × 5 classes + ``test_on_{caltech,...}.json``."""
    return _write_domain_dataset(root, "VLCS", VLCS_DOMAINS, VLCS_CLASSES, seed, per_class_domain, image_size)


def _write_zhou(path, per_class_entries):
    """A CoOp "zhou" split: per class, the first half train, then 20% val, the rest test."""
    split = {"train": [], "val": [], "test": []}
    for entries in per_class_entries:
        n = len(entries)
        n_train = n // 2
        n_val = num_val(n - n_train, 0.4) if n - n_train >= 2 else 0
        split["train"] += entries[:n_train]
        split["val"] += entries[n_train:n_train + n_val]
        split["test"] += entries[n_train + n_val:]
    with open(path, "w") as f:
        json.dump(split, f)
        f.write("\n")


def _write_class_folders(root, dirname, image_subdir, split_name, folders, render, seed, n, size, file_name):
    """Class-folder OOD set; ``folders`` = [(folder, classname, render_arg)], labels by folder order."""
    set_dir = os.path.join(root, dirname)
    _fresh_dir(set_dir)
    per_class = []
    for label, (folder, classname, arg) in enumerate(folders):
        out = os.path.join(set_dir, image_subdir, folder)
        os.makedirs(out)
        entries = []
        for i in range(n):
            name = file_name(folder, i)
            _save(render(arg, size, _rng(seed, dirname, folder, i)), os.path.join(out, name))
            entries.append([f"{folder}/{name}", label, classname])
        per_class.append(entries)
    _write_zhou(os.path.join(set_dir, split_name), per_class)
    return set_dir


def write_dtd(root, seed=0, per_class=8, image_size=64):
    """``root/dtd``: texture classes in ``images/`` + ``split_zhou_DescribableTextures.json``."""
    return _write_class_folders(
        root, "dtd", "images", "split_zhou_DescribableTextures.json",
        [(c, c, c) for c in DTD_CLASSES], _render_texture, seed, per_class, image_size,
        lambda folder, i: f"{folder}_{i + 1:04d}.jpg",
    )


def write_food101(root, seed=0, per_class=8, image_size=64):
    """``root/food-101``: dish classes in ``images/`` + ``split_zhou_Food101.json``."""
    return _write_class_folders(
        root, "food-101", "images", "split_zhou_Food101.json",
        [(c, c, c) for c in FOOD_CLASSES], _render_dish, seed, per_class, image_size,
        lambda folder, i: f"{100000 + 7919 * i + zlib.crc32(folder.encode()) % 1000}.jpg",
    )


def write_caltech101(root, seed=0, per_class=8, image_size=64):
    """``root/caltech-101``: object classes in ``101_ObjectCategories/`` + ``split_zhou_Caltech101.json``
    (class names renamed as in CoOp: airplanes→airplane, Faces→face, Leopards→leopard, Motorbikes→motorbike)."""
    folders = [(f, CALTECH_FOLDERS[f][0], CALTECH_FOLDERS[f][1]) for f in sorted(CALTECH_FOLDERS)]
    return _write_class_folders(
        root, "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json",
        folders, _render_object, seed, per_class, image_size,
        lambda folder, i: f"image_{i + 1:04d}.jpg",
    )


# ImageNet: (wnid, class name) in classnames.txt order, and each class's (shape, RGB colour).
IMAGENET_CLASSES = (
    ("n01440764", "tench"),
    ("n01530575", "brambling"),
    ("n01641577", "American bullfrog"),
    ("n02085620", "Chihuahua"),
    ("n02123045", "tabby cat"),
    ("n02504458", "African bush elephant"),
    ("n02690373", "airliner"),
    ("n03272010", "electric guitar"),
    ("n03417042", "garbage truck"),
    ("n07747607", "orange"),
)
IMAGENET_OBJECTS = {
    "n01440764": ("circle", (240, 140, 20)),
    "n01530575": ("square", (70, 95, 175)),
    "n01641577": ("triangle", (235, 210, 30)),
    "n02085620": ("figure8", (190, 25, 40)),
    "n02123045": ("diamond", (40, 150, 60)),
    "n02504458": ("house", (140, 60, 180)),
    "n02690373": ("plus", (30, 185, 200)),
    "n03272010": ("wide_rect", (250, 120, 190)),
    "n03417042": ("ell", (120, 70, 30)),
    "n07747607": ("star5", (20, 40, 120)),
}
# Indices (into IMAGENET_CLASSES) of the classes that ImageNet-A / -R hold (the real ones hold 200 of 1000).
IMAGENET_A_CLASSES = (0, 2, 3, 4, 5, 7, 8)
IMAGENET_R_CLASSES = (0, 1, 3, 4, 6, 7, 8)
# variant folder (under root), class folder naming, style, classes
IMAGENET_VARIANT_TREES = (
    ("imagenetv2", "imagenetv2-matched-frequency-format-val", "index", "photo", None),
    ("imagenet-sketch", "images", "wnid", "sketch", None),
    ("imagenet-adversarial", "imagenet-a", "wnid", "PASCAL", IMAGENET_A_CLASSES),
    ("imagenet-rendition", "imagenet-r", "wnid", "cartoon", IMAGENET_R_CLASSES),
)
IMAGENET_README = "Stray file of the real download (class list); croft ignores files that are not class folders.\n"


def write_imagenet(root, seed=0, per_class=6, image_size=64):
    """``root/imagenet`` (``classnames.txt``, ``images/{train,val}/<wnid>/``: ``per_class`` images
    each) and the four variants (``max(2, per_class // 2)`` images per class), as listed in the
    module docstring. Returns the ``imagenet`` folder."""
    imagenet = os.path.join(root, "imagenet")
    _fresh_dir(imagenet)
    with open(os.path.join(imagenet, "classnames.txt"), "w") as f:
        f.writelines(f"{wnid} {name}\n" for wnid, name in IMAGENET_CLASSES)
    for split in ("train", "val"):
        for wnid, _ in IMAGENET_CLASSES:
            folder = os.path.join(imagenet, "images", split, wnid)
            os.makedirs(folder)
            shape, colour = IMAGENET_OBJECTS[wnid]
            for i in range(per_class):
                name = f"{wnid}_{i + 1}.JPEG" if split == "train" else f"ILSVRC2012_val_{_val_number(wnid, i):08d}.JPEG"
                _save(_render_id("photo", shape, colour, image_size, _rng(seed, "imagenet", split, wnid, i)),
                      os.path.join(folder, name))
    n_variant = max(2, per_class // 2)
    for top, sub, naming, style, subset in IMAGENET_VARIANT_TREES:
        base = os.path.join(root, top)
        _fresh_dir(base)
        out = os.path.join(base, sub)
        os.makedirs(out)
        for index, (wnid, _) in enumerate(IMAGENET_CLASSES):
            if subset is not None and index not in subset:
                continue
            folder = os.path.join(out, str(index) if naming == "index" else wnid)
            os.makedirs(folder)
            shape, colour = IMAGENET_OBJECTS[wnid]
            for i in range(n_variant):
                _save(_render_id(style, shape, colour, image_size, _rng(seed, top, wnid, i)),
                      os.path.join(folder, f"{top}_{wnid}_{i:03d}.jpg"))
        if subset is not None:
            with open(os.path.join(out, "README.txt"), "w") as f:
                f.write(IMAGENET_README)
    return imagenet


def _val_number(wnid, i):
    """A distinct ILSVRC-style val image number per (class, index)."""
    return 1 + [w for w, _ in IMAGENET_CLASSES].index(wnid) * 1000 + i


# (name, writer, which count argument of make_synthetic_data it takes)
WRITERS = (
    ("PACS", write_pacs, "per_class_domain"),
    ("VLCS", write_vlcs, "per_class_domain"),
    ("dtd", write_dtd, "ood_per_class"),
    ("food-101", write_food101, "ood_per_class"),
    ("caltech-101", write_caltech101, "ood_per_class"),
    ("imagenet", write_imagenet, "per_class_domain"),
)


def make_synthetic_data(root, seed=0, per_class_domain=6, image_size=64, ood_per_class=8):
    """Write every synthetic dataset under ``root`` (see the module docstring).

    Returns ``{dataset folder name: path}``. Deterministic: the same arguments write the same bytes.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if per_class_domain < 1 or ood_per_class < 1:
        raise ValueError("per_class_domain and ood_per_class must be >= 1")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    os.makedirs(root, exist_ok=True)
    counts = {"per_class_domain": per_class_domain, "ood_per_class": ood_per_class}
    return {name: writer(root, seed, counts[count], image_size) for name, writer, count in WRITERS}


# ------------------------------------------------------------------ demo benchmark (scripts/demo.sh, docs/demo.md)
#
# make_demo_data writes a harder PACS benchmark than make_synthetic_data, built so that zero-shot
# CLIP, fine-tuning and open-set detection all have room to differ (docs/demo.md explains the design):
#
# - class = hue (the cue the toy backbone learns) + shape (ID_OBJECTS). The seven hues sit in a band
#   of the colour wheel (DEMO_HUE_START .. +DEMO_HUE_BAND, DEMO_HUE_SPACING apart, hue jitter
#   DEMO_HUE_SD), so neighbouring classes' colours overlap a little;
# - the pretraining pool (``root/pretrain/PACS``, source styles only) draws each class at its hue; the
#   benchmark (all four domains) draws it DEMO_LABEL_SHIFT class spacings further on: the benchmark's
#   classes are drawn a little differently from the captioned pretraining images, so zero-shot CLIP
#   mislabels the images near a class boundary and few-shot fine-tuning on the sources can learn the
#   difference (source val is not saturated);
# - styles: photo (shaded, textured object on a muted gradient), cartoon (flat colour, black outline),
#   sketch (coloured-pencil outline and hatching on white paper) are the sources; the held-out
#   art_painting shares the object colour only partly: varnished (DEMO_VARNISH of the colour replaced
#   by its sepia tone), brush texture on a background of random brush strokes, lower contrast, blur
#   and canvas grain;
# - the open-set sets are painted in the held-out style too, so they differ from the ID test images by
#   their content only: Caltech-101 (near) = new shapes close to the ID ones (octagon, star, trapezoid,
#   half disc, crescent, arrow, hexagon, bow tie) in the warm hues outside the ID band; Food-101 (mid)
#   = dishes on plates; DTD (far) = whole-image textures.

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
