"""Bytes in, arrays out: fetch a media reference and decode video frames, images and audio.

    from sidepath.decoders import Fetcher, decode_media
    fetcher = Fetcher(max_bytes=..., allow_hosts=[...], file_roots=[...])
    media = decode_media(ref, "video", DecodeSpec(fps=1, max_frames=32), fetcher)

See docs/decoders.md for the rules (SSRF guard, caps, video modes) and measurements.
"""
from __future__ import annotations

from sidepath.decoders.base import MEDIA_KINDS, DecodeSpec, Media
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.fetcher import Fetcher
from sidepath.decoders.image import (
                                     IMAGENET_MEAN,
                                     IMAGENET_STD,
                                     resize_center_crop,
                                     resize_letterbox,
                                     resize_max_side,
                                     to_float_chw,
)
from sidepath.decoders.media import decode_media
from sidepath.decoders.video import VIDEO_MODES

__all__ = [
    "Media", "DecodeSpec", "MEDIA_KINDS", "VIDEO_MODES", "Fetcher", "Fetched", "decode_media",
    "resize_letterbox", "resize_max_side", "resize_center_crop", "to_float_chw", "IMAGENET_MEAN", "IMAGENET_STD",
]
