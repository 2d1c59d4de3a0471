"""The mixed request stream of the reliability scenarios: real encoded media, mostly small.

Per 20 requests: 12 inline images (``data:`` URLs and bare base64), 4 image
files, 2 images over HTTP, one short video file and one short video over HTTP
(H.264 + AAC).  Each request has a unique ``postid`` so that the results
table has one row per request and model, findable by key or by its source.
"""
from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.fixtures.media import MediaServer, make_image, make_video

__all__ = ["MediaSet", "make_media_set", "mixed_requests", "inline_image_requests", "noisy_png"]


@dataclass(frozen=True)
class MediaSet:
    dir: Path                 # put this under decode.file_roots
    png: bytes
    jpeg: bytes
    image_file: Path
    video_file: Path          # 1 s, 10 fps, 64x48, with sound
    png_b64: str
    jpeg_b64: str


def noisy_png(size: tuple[int, int], seed: int) -> bytes:
    """A PNG of random pixels: it does not compress, so its size is about w*h*3 bytes."""
    import cv2

    w, h = size
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", rgb)
    assert ok
    return buf.tobytes()


def make_media_set(d: Path) -> MediaSet:
    d.mkdir(parents=True, exist_ok=True)
    png = make_image("png", size=(64, 48))
    jpeg = make_image("jpeg", size=(64, 48), path=d / "image.jpg")
    video = make_video(d / "clip.mp4", seconds=1.0, fps=10, size=(64, 48), audio=True)
    return MediaSet(d, png, jpeg, d / "image.jpg", video,
                    base64.b64encode(png).decode(), base64.b64encode(jpeg).decode())


def serve(media: MediaSet, server: MediaServer) -> dict[str, str]:
    """Put the set on ``server``; returns the URLs by name."""
    return {"image": server.add("/image.jpg", media.jpeg, content_type="image/jpeg"),
            "video": server.add_file("/clip.mp4", media.video_file, content_type="video/mp4")}


def _ref(i: int, media: MediaSet, urls: dict[str, str] | None) -> tuple[str, str]:
    slot = i % 20
    if slot < 6:
        return "image", "data:image/png;base64," + media.png_b64
    if slot < 12:
        return "data", media.jpeg_b64                       # bare base64, kind sniffed from the bytes
    if slot < 16 or (urls is None and slot < 18):
        return "image", str(media.image_file)
    if slot < 18:
        return "image", urls["image"]                       # type: ignore[index]
    if slot == 18 or urls is None:
        return "video", str(media.video_file)
    return "video", urls["video"]


def mixed_requests(n: int, tag: str, media: MediaSet, server: MediaServer | None = None,
                   start: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` good requests with postids ``{tag}-{i}``; HTTP ones only when ``server`` is given."""
    urls = serve(media, server) if server is not None else None
    for i in range(start, start + n):
        kind, ref = _ref(i, media, urls)
        yield {"postid": f"{tag}-{i}", "uid": f"u{i % 7}", "seqid": i, kind: ref}


def inline_image_requests(n: int, tag: str, png_b64: str) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"postid": f"{tag}-{i}", "uid": "u", "seqid": i, "image": png_b64}
