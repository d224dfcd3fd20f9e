"""Drawing for the synthetic datasets of :mod:`croft.testing`: seeded randomness, shapes, the rendering styles
of the ID domains and the open-set sets, and writing (baseline JPEG, dataset folders with a marker).

Every image comes from a NumPy generator seeded by :func:`_rng` from ints and strings (crc32), so a rerun
writes the same bytes. The names keep their underscore: they are shared by the writers of
:mod:`croft.testing.synthetic`, :mod:`croft.testing.demo_data` and :mod:`croft.testing.fewshot_trees`, not an API.
"""
import math
import os
import shutil
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MARKER = ".croft_synthetic"
JPEG_QUALITY = 90


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
        f.write("written by croft.testing.synthetic.make_synthetic_data\n")
