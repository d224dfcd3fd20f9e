"""Reading images of every PIL mode as 8-bit RGB (croft.data.images.to_rgb / read_image).

``convert("RGB")`` clips wide single-channel modes at 255: a 16-bit image reads as (nearly) all
white. 16-bit images are scaled to 8 bit; 32-bit integer and float images are kept only when they
hold 8-bit values, else refused with a message naming the mode and the value range. Every other
mode converts exactly as ``convert("RGB")`` did.
"""
import io
import re

import numpy as np
import pytest
from PIL import Image

from croft.data.images import ImageModeError, read_image, to_rgb

GRADIENT = np.tile(np.arange(256, dtype=np.uint8), (3, 1))      # 3 x 256: every 8-bit value
SIXTEEN = GRADIENT.astype(np.uint16) * 257                        # the same image at 16 bits (255 -> 65535)


def reopened(img, fmt):
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    buffer.seek(0)
    return Image.open(buffer)


def gray(rgb_image):
    array = np.asarray(rgb_image)
    assert rgb_image.mode == "RGB" and array.shape[2] == 3
    assert (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()
    return array[..., 0]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_files_scale_to_eight_bits(tmp_path, fmt):
    path = tmp_path / f"gradient.{fmt.lower()}"
    Image.fromarray(SIXTEEN).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16"                                 # what PIL opens them as
    assert np.array_equal(gray(read_image(path)), GRADIENT)       # convert("RGB") gave 255 almost everywhere


def test_sixteen_bit_pgm_opens_as_mode_i_and_scales(tmp_path):
    path = tmp_path / "gradient.pgm"
    path.write_bytes(b"P5\n256 3\n65535\n" + SIXTEEN.astype(">u2").tobytes())
    with Image.open(path) as img:
        assert img.mode == "I"
    assert np.array_equal(gray(read_image(path)), GRADIENT)


@pytest.mark.parametrize("mode, dtype", [("I;16B", ">u2"), ("I;16L", "<u2"), ("I;16N", "=u2")])
def test_sixteen_bit_byte_orders_scale(mode, dtype):
    img = Image.frombytes(mode, (256, 3), SIXTEEN.astype(dtype).tobytes())
    assert np.array_equal(gray(to_rgb(img)), GRADIENT)


def test_sixteen_bit_rounds_to_nearest():
    values = np.array([[0, 128, 129, 257, 385, 386, 65535]], dtype=np.uint16)
    assert gray(to_rgb(Image.fromarray(values))).tolist() == [[0, 0, 1, 1, 1, 2, 255]]


@pytest.mark.parametrize("mode", ["I", "F"])
def test_wide_modes_holding_eight_bit_values_convert_as_before(mode):
    img = Image.fromarray(GRADIENT).convert(mode)
    assert img.mode == mode and img.format is None
    assert np.array_equal(np.asarray(to_rgb(img)), np.asarray(img.convert("RGB")))
    assert np.array_equal(gray(to_rgb(img)), GRADIENT)


@pytest.mark.parametrize("array, mode, message", [
    (np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4), "F", "floating-point image (mode F) with values "
                                                                     "from 0 to 1"),
    (np.full((3, 4), 127.5, dtype=np.float32), "F", "from 127.5 to 127.5"),
    (np.array([[0, 70000, -3, 5]], dtype=np.int32), "I", "32-bit integer image (mode I) with values from -3 to 70000"),
])
def test_wide_modes_without_an_eight_bit_meaning_are_refused(tmp_path, array, mode, message):
    path = tmp_path / "wide.tif"
    Image.fromarray(array).save(path)
    with Image.open(path) as img:
        assert img.mode == mode
        with pytest.raises(ImageModeError, match=re.escape(message)):
            to_rgb(img)
    with pytest.raises(OSError) as info:
        read_image(path)
    text = str(info.value)
    assert text.startswith(f"unsupported image {path}: ") and message in text
    assert "expected an 8- or 16-bit image" in text
    assert "\n" not in text


@pytest.mark.parametrize("mode", ["1", "L", "P", "PA", "LA", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"])
def test_other_modes_convert_exactly_as_convert_rgb(mode):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).convert(mode)
    assert img.mode == mode
    assert np.array_equal(np.asarray(to_rgb(img)), np.asarray(img.convert("RGB")))


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"),
                                       ("RGB", "JPEG")])
def test_files_of_other_modes_read_as_before(tmp_path, mode, fmt):
    rng = np.random.default_rng(1)
    path = tmp_path / f"image.{fmt.lower()}"
    Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).convert(mode).save(path, fmt)
    with Image.open(path) as img:
        assert img.mode == mode
        expected = np.asarray(img.convert("RGB"))
    assert np.array_equal(np.asarray(read_image(path)), expected)
