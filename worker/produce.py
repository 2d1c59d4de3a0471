"""`sidepath produce`: send requests from a JSONL file, or generated demo requests."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer

from sidepath.worker.config import Config
from sidepath.worker.errors import ConfigError, FatalError
from sidepath.worker.kafka_config import producer_config

__all__ = ["read_jsonl", "demo_requests", "produce_requests"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise ConfigError("--file", f"{path}:{n}", f"line is not JSON ({exc}); one JSON object per line") \
                from None
        out.append(doc)
    return out


def demo_requests(count: int, media_dir: Path) -> list[dict[str, Any]]:
    """``count`` requests over freshly generated media: every third one a 3 s video, the rest images."""
    from sidepath.worker.demo_media import make_image, make_video

    media_dir = media_dir.resolve()
    reqs = []
    for i in range(count):
        if i % 3 == 2:
            ref = make_video(media_dir / f"video-{i:04d}.mp4", seconds=3, seed=i, bpm=90 + 10 * (i % 5))
            kind = "video"
        else:
            ref = make_image(media_dir / f"image-{i:04d}.jpg", seed=i)
            kind = "image"
        reqs.append({"postid": f"demo-{i:04d}", "uid": f"user-{i % 7}", "seqid": 1, kind: str(ref),
                     "source": "sidepath-demo"})
    return reqs


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
