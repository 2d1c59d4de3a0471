"""`sidepath produce`: send requests from a JSONL file, or generated demo requests."""
from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer

from sidepath.core.errors import ConfigError, FatalError
from sidepath.core.masking import mask_url
from sidepath.worker.config import Config
from sidepath.worker.kafka_config import producer_config

__all__ = ["read_jsonl", "demo_requests", "demo_summary", "produce_requests"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError("--file", f"{path}:{n}", f"line is not UTF-8 text (byte {exc.start}); "
                              "save the file as UTF-8") from None
        except ValueError as exc:
            raise ConfigError("--file", f"{path}:{n}", f"line is not JSON ({exc}); one JSON object per line") \
                from None
        out.append(doc)
    return out


def demo_requests(count: int, media_dir: Path | None = None) -> list[dict[str, Any]]:
    """``count`` requests over freshly generated media: every third one a 3 s video, the rest images.

    Without ``media_dir`` the media travels inline in the message (a ``data:`` URL), which the
    default worker decodes; with it the files are written there and requests point at them by
    path, which a worker reads only from folders listed in ``decode.file_roots``.
    """
    import tempfile

    from sidepath.worker.dev.demo_media import make_image, make_video

    with tempfile.TemporaryDirectory(prefix="sidepath-demo-") as scratch:
        folder = media_dir.resolve() if media_dir is not None else Path(scratch)
        reqs = []
        for i in range(count):
            if i % 3 == 2:
                ref = make_video(folder / f"video-{i:04d}.mp4", seconds=3, seed=i, bpm=90 + 10 * (i % 5))
                kind, mime = "video", "video/mp4"
            else:
                ref = make_image(folder / f"image-{i:04d}.jpg", seed=i)
                kind, mime = "image", "image/jpeg"
            value = str(ref) if media_dir is not None else \
                f"data:{mime};base64,{base64.b64encode(ref.read_bytes()).decode()}"
            reqs.append({"postid": f"demo-{i:04d}", "uid": f"user-{i % 7}", "seqid": 1, kind: value,
                         "source": "sidepath-demo"})
    return reqs


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def demo_summary(cfg: Config, requests: list[dict[str, Any]], media_dir: Path | None) -> str:
    """One line: what was produced, and what the worker under this config will do with it."""
    videos = sum(1 for r in requests if "video" in r)
    where = f"{len(requests)} demo requests ({_count(len(requests) - videos, 'image')}, {_count(videos, 'video')}) " \
            f"to {cfg.kafka.topic} at {cfg.kafka.bootstrap_servers}"
    todo = f"`sidepath run --until-end` runs model {cfg.model.name} over them and writes " \
           f"{', '.join(mask_url(u) for u in cfg.sinks.urls)}"
    if media_dir is None:
        return f"produced {where}, media inline as base64; {todo}"
    folder = media_dir.resolve()
    if any(folder.is_relative_to(Path(root).resolve()) for root in cfg.decode.file_roots):
        return f"produced {where}, media in {folder} (under decode.file_roots); {todo}"
    return (f"produced {where}, media in {folder}: the worker refuses local files outside decode.file_roots, "
            f"so run it with SIDEPATH_DECODE_FILE_ROOTS={folder} (or omit --media-dir to send media inline)")


def produce_requests(cfg: Config, requests: Iterable[dict[str, Any] | bytes]) -> int:
    """Send each request (key = postid) and wait until the broker has them all."""
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err.str())

    p = Producer(producer_config(cfg))
    n = 0
    try:
        for req in requests:
            value = req if isinstance(req, bytes) else json.dumps(req).encode()
            key = str(req.get("postid", "")).encode() if isinstance(req, dict) else None
            while True:
                try:
                    p.produce(cfg.kafka.topic, value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.1)
            n += 1
            p.poll(0)
    except KafkaException as exc:
        raise FatalError(f"cannot produce to {cfg.kafka.topic}: {exc.args[0]}") from None
    left = p.flush(60)
    if left or errors:
        raise FatalError(f"{left} requests not delivered to {cfg.kafka.topic} at {cfg.kafka.bootstrap_servers}"
                         f"{': ' + errors[0] if errors else ''}; is the broker running?")
    return n
