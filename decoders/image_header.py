"""Image format and dimensions read from the header, before any pixel is allocated.

OpenCV has no header-only call and its own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``)
is process-wide and fixed at first use, so the pixel cap is enforced here: a
PNG whose IHDR claims 30000x30000 is refused after reading 24 bytes.  Only the
few fields needed are parsed; anything malformed yields ``None`` and the
decoder's own error.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ImageInfo", "sniff_image", "SUPPORTED_IMAGE_FORMATS"]

SUPPORTED_IMAGE_FORMATS = ("jpeg", "png", "webp", "bmp", "gif")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str                 # jpeg | png | webp | bmp | gif | tiff | avif | heic
    width: int | None = None    # None when the header could not be read
    height: int | None = None

    @property
    def pixels(self) -> int | None:
        return None if self.width is None or self.height is None else self.width * self.height


def _png(b: bytes) -> ImageInfo:
    if len(b) >= 24 and b[12:16] == b"IHDR":
        w, h = struct.unpack(">II", b[16:24])
        return ImageInfo("png", w, h)
    return ImageInfo("png")


# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(b: bytes) -> ImageInfo:
    i, n = 2, len(b)
    while i + 4 <= n:
        if b[i] != 0xFF:
            return ImageInfo("jpeg")
        marker = b[i + 1]
        if marker == 0xFF:                          # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):                  # end of image / start of scan: no frame header seen
            return ImageInfo("jpeg")
        (length,) = struct.unpack(">H", b[i + 2:i + 4])
        if marker in _SOF and i + 9 <= n:
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return ImageInfo("jpeg", w, h)
        i += 2 + length
    return ImageInfo("jpeg")


def _webp(b: bytes) -> ImageInfo:
    chunk = b[12:16]
    if chunk == b"VP8 " and len(b) >= 30 and b[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", b[26:30])
        return ImageInfo("webp", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L" and len(b) >= 25 and b[20] == 0x2F:
        bits = int.from_bytes(b[21:25], "little")
        return ImageInfo("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(b) >= 30:
        return ImageInfo("webp", int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1)
    return ImageInfo("webp")


# the sizes of the DIB headers that exist; "BM" alone is too weak a signature
_BMP_DIB_SIZES = frozenset(struct.pack("<I", n) for n in (12, 40, 52, 56, 64, 108, 124))


def _bmp(b: bytes) -> ImageInfo:
    if len(b) < 26:
        return ImageInfo("bmp")
    (size,) = struct.unpack("<I", b[14:18])
    if size == 12:
        w, h = struct.unpack("<HH", b[18:22])
    else:
        w, h = struct.unpack("<ii", b[18:26])
    return ImageInfo("bmp", abs(w), abs(h))


def _gif(b: bytes) -> ImageInfo:
    if len(b) < 10:
        return ImageInfo("gif")
    w, h = struct.unpack("<HH", b[6:10])
    return ImageInfo("gif", w, h)


def sniff_image(data: bytes) -> ImageInfo | None:
    """The image format (and size when readable) of ``data``, or None if it is not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data.startswith(b"BM") and len(data) >= 18 and data[14:18] in _BMP_DIB_SIZES:
        return _bmp(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ImageInfo("tiff")
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
        return ImageInfo("avif" if data[8:11] == b"avi" else "heic")
    return None
