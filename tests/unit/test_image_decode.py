"""Still images: formats, EXIF orientation, the pixel cap before allocation, reduced decoding, helpers."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from sidepath.core.errors import DecodeError
from sidepath.decoders.image import resize_center_crop, resize_letterbox, resize_max_side, to_float_chw
from sidepath.decoders.image_decode import decode_image, reduced_factor
from sidepath.decoders.image_header import ImageInfo, sniff_image
from tests.fixtures.media import make_image, make_png_bomb, marker_quadrant

BIG = 64_000_000


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp"])
def test_each_format_decodes_to_upright_rgb(fmt):
    img = decode_image(make_image(fmt, size=(160, 120)), max_pixels=BIG)
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    assert marker_quadrant(img) == "top-left"          # RGB, not BGR: the marker is red
    assert img[30, 10, 0] > 200 and img[30, 10, 2] < 60


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp"])
def test_header_gives_the_real_size(fmt):
    info = sniff_image(make_image(fmt, size=(333, 71)))
    assert (info.format, info.width, info.height) == ("jpeg" if fmt == "jpeg" else fmt, 333, 71)


@pytest.mark.parametrize("orientation, shape, quadrant", [
    (1, (120, 160), "top-left"),
    (3, (120, 160), "bottom-right"),      # rotated 180
    (6, (160, 120), "top-right"),         # display = rotate 90 clockwise
    (8, (160, 120), "bottom-left"),       # display = rotate 90 counter-clockwise
])
def test_exif_orientation_is_applied(orientation, shape, quadrant):
    img = decode_image(make_image("jpeg", orientation=orientation), max_pixels=BIG)
    assert img.shape[:2] == shape
    assert marker_quadrant(img) == quadrant


def test_exif_orientation_survives_reduced_decoding():
    data = make_image("jpeg", size=(1600, 1200), orientation=6)
    img = decode_image(data, max_pixels=BIG, max_side=300)
    assert img.shape == (300, 225, 3)
    assert marker_quadrant(img) == "top-right"


@pytest.mark.parametrize("bomb", [make_png_bomb(30000, 30000), make_png_bomb(9000, 9000, real=True)],
                         ids=["claims-30000x30000", "real-zlib-9000x9000"])
def test_decompression_bomb_is_refused_before_allocating(bomb):
    assert len(bomb) < 100_000            # a small file, a huge image
    with pytest.raises(DecodeError, match=r"image is \d+x\d+ = \d+ pixels, over decode.max_pixels=1000000"):
        decode_image(bomb, max_pixels=1_000_000)


def test_jpeg_header_claiming_a_huge_size_is_refused():
    data = bytearray(make_image("jpeg", size=(64, 48)))
    info = sniff_image(bytes(data))
    assert (info.width, info.height) == (64, 48)
    # patch the SOF0 frame header to claim 30000 x 30000
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)
    with pytest.raises(DecodeError, match="30000x30000"):
        decode_image(bytes(data), max_pixels=BIG)


def test_a_real_bomb_under_a_raised_cap_decodes():
    # the cap is the only thing that stopped it above: under a larger cap the same kind of file decodes
    img = decode_image(make_png_bomb(1200, 900, real=True), max_pixels=2_000_000)
    assert img.shape == (900, 1200, 3) and int(img.max()) == 0


@pytest.mark.parametrize("data, match", [
    (b"<!DOCTYPE html><html><body>404</body></html>", r"not an image: 44 bytes, looks like an HTML page"),
    (b"hello world!", r"not an image: 12 bytes"),
    (b"", r"not an image: 0 bytes, empty"),
    (b"II*\x00" + bytes(100), r"unsupported image format TIFF"),
])
def test_not_an_image_gives_one_clear_line(data, match):
    with pytest.raises(DecodeError, match=match) as info:
        decode_image(data, max_pixels=BIG)
    assert "\n" not in str(info.value)


def test_truncated_image_is_a_decode_error():
    data = make_image("png", size=(200, 200))
    with pytest.raises(DecodeError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 3], max_pixels=BIG)


@pytest.mark.parametrize("size, max_side, factor", [
    ((4000, 3000), 500, 8), ((4000, 3000), 501, 4), ((3000, 4000), 1000, 4), ((4000, 3000), 2000, 2),
    ((4000, 3000), 2001, 1), ((640, 480), 0, 1), ((640, 480), 1000, 1),
])
def test_reduced_factor_never_goes_below_the_wanted_side(size, max_side, factor):
    k = reduced_factor(ImageInfo("jpeg", *size), max_side)
    assert k == factor
    if max_side:
        assert max(size) // k >= min(max_side, max(size))


def test_reduced_factor_is_for_jpeg_only():
    assert reduced_factor(ImageInfo("png", 4000, 3000), 500) == 1


def test_reduced_decode_matches_full_decode_then_resize():
    import cv2

    data = make_image("jpeg", size=(1600, 1200))
    fast = decode_image(data, max_pixels=BIG, max_side=400)
    full = decode_image(data, max_pixels=BIG)
    slow = cv2.resize(full, (400, 300), interpolation=cv2.INTER_AREA)
    assert fast.shape == slow.shape == (300, 400, 3)
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 4


def test_max_side_never_enlarges():
    img = decode_image(make_image("png", size=(160, 120)), max_pixels=BIG, max_side=1000)
    assert img.shape == (120, 160, 3)


def test_pixel_cap_counts_the_header_not_the_file_size():
    data = make_image("png", size=(400, 300))
    assert decode_image(data, max_pixels=120_000).shape == (300, 400, 3)
    with pytest.raises(DecodeError, match="over decode.max_pixels=119999"):
        decode_image(data, max_pixels=119_999)


# -- preprocessing helpers --------------------------------------------------------------------
def _frames(n=2, h=120, w=160):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_letterbox_keeps_aspect_and_centres():
    frames = np.full((3, 100, 200, 3), 200, np.uint8)
    out = resize_letterbox(frames, 64)
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    assert (out[:, :16] == 0).all() and (out[:, -16:] == 0).all()     # bars top and bottom
    assert (out[:, 16:48] == 200).all()


def test_letterbox_pad_value_and_stretch():
    frames = np.full((1, 50, 100, 3), 9, np.uint8)
    assert resize_letterbox(frames, 20, pad_value=114)[0, 0, 0, 0] == 114
    stretched = resize_letterbox(frames, (30, 40), letterbox=False)
    assert stretched.shape == (1, 30, 40, 3) and (stretched == 9).all()


def test_resize_max_side_and_center_crop():
    frames = _frames(2, 120, 160)
    assert resize_max_side(frames, 80).shape == (2, 60, 80, 3)
    assert resize_max_side(frames, 500).shape == (2, 120, 160, 3)
    crop = resize_center_crop(frames, 60)
    assert crop.shape == (2, 60, 60, 3) and crop.flags.c_contiguous


def test_to_float_chw_normalises():
    frames = np.zeros((2, 4, 5, 3), np.uint8)
    frames[..., 0] = 255
    out = to_float_chw(frames, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32
    assert np.allclose(out[:, 0], 1.0) and np.allclose(out[:, 1], -1.0)


def test_helpers_refuse_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        resize_letterbox(np.zeros((10, 10, 3), np.uint8), 8)
    with pytest.raises(ValueError, match="uint8"):
        resize_letterbox(np.zeros((1, 10, 10, 3), np.float32), 8)
