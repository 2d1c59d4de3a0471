"""Still images to RGB frames with OpenCV: pixel cap first, EXIF orientation, reduced JPEG decode.

When the caller wants at most ``max_side`` pixels and the JPEG is at least twice
that, libjpeg decodes straight to 1/2, 1/4 or 1/8 of the size (its DCT scaling,
``IMREAD_REDUCED_COLOR_*``), which is several times cheaper than a full decode
followed by a resize.  The factor is chosen so the result is never smaller than
``max_side``; a final INTER_AREA resize makes it exact.
"""
from __future__ import annotations

import cv2
import numpy as np

from sidepath.core.errors import DecodeError
from sidepath.decoders.image import scaled_size
from sidepath.decoders.image_header import SUPPORTED_IMAGE_FORMATS, ImageInfo, sniff_image

__all__ = ["decode_image", "reduced_factor", "describe_bytes"]

# OpenCV >= 4.11 converts to RGB inside the codec; older versions need a cvtColor
_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
_REDUCED = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def describe_bytes(data: bytes) -> str:
    """A short hint of what some bytes look like, for "not an image" style messages."""
    head = data[:64].lstrip()
    lower = head.lower()
    if not data:
        return "empty"
    if lower.startswith((b"<!doctype html", b"<html")):
        return "looks like an HTML page"
    if lower.startswith((b"{", b"[")):
        return "looks like JSON"
    if lower.startswith(b"<?xml") or lower.startswith(b"<svg"):
        return "looks like XML/SVG"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return f"starts with text {head[:24].decode('ascii', 'replace')!r}"
    return f"starts with bytes {data[:8].hex(' ')}"


def reduced_factor(info: ImageInfo, max_side: int) -> int:
    """The JPEG DCT scale (1, 2, 4 or 8) that still leaves the longer side >= ``max_side``."""
    if info.format != "jpeg" or max_side <= 0 or info.width is None or info.height is None:
        return 1
    long_side = max(info.width, info.height)
    for k in (8, 4, 2):
        if long_side // k >= max_side:
            return k
    return 1


def decode_image(data: bytes, *, max_pixels: int, max_side: int = 0) -> np.ndarray:
    """One RGB uint8 ``(H, W, 3)`` image; ``DecodeError`` for anything that is not a usable image."""
    info = sniff_image(data)
    if info is None:
        raise DecodeError(f"not an image: {len(data)} bytes, {describe_bytes(data)}; "
                          f"send JPEG, PNG, WebP, BMP or GIF")
    if info.format not in SUPPORTED_IMAGE_FORMATS:
        raise DecodeError(f"unsupported image format {info.format.upper()} ({len(data)} bytes); "
                          f"send JPEG, PNG, WebP, BMP or GIF")
    if info.pixels is None:
        raise DecodeError(f"cannot read the {info.format.upper()} header ({len(data)} bytes): "
                          f"the file is truncated or corrupt")
    if info.pixels == 0:
        raise DecodeError(f"{info.format.upper()} image of size {info.width}x{info.height} has no pixels")
    if info.pixels > max_pixels:
        raise DecodeError(f"image is {info.width}x{info.height} = {info.pixels} pixels, over "
                          f"decode.max_pixels={max_pixels}; send a smaller image or raise decode.max_pixels")
    factor = reduced_factor(info, max_side)
    flags = (_REDUCED[factor] | _RGB) if _RGB is not None else (_REDUCED[factor] | cv2.IMREAD_COLOR)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise DecodeError(f"cannot decode {info.format.upper()} image ({len(data)} bytes): "
                          f"{str(exc).strip().splitlines()[-1]}") from exc
    if img is None or img.size == 0:
        raise DecodeError(f"cannot decode {info.format.upper()} image ({len(data)} bytes): "
                          f"the file is truncated or corrupt")
    if _RGB is None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    nh, nw = scaled_size(h, w, max_side)
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)
