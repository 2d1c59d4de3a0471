"""The fingerprint model on real H.264 videos encoded and decoded in the test (PyAV)."""
from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest
import torch

from sidepath.decoders.base import Media
from sidepath.models import create_model
from sidepath.models.fingerprint import dct_matrix, frame_set_distance, hamming_distance


def scene(seed: int, n: int = 8, h: int = 240, w: int = 320) -> np.ndarray:
    """A gradient background with coloured discs that move: different seeds, different videos."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 1, 3)
    bg = np.stack([xx / w * 255 * a[0], yy / h * 255 * a[1], (1 - xx / w) * 255 * a[2]], -1)
    discs = [(rng.uniform(0, h), rng.uniform(0, w), rng.uniform(15, 60), rng.uniform(-12, 12, 2),
              rng.uniform(0, 255, 3)) for _ in range(6)]
    frames = []
    for t in range(n):
        img = bg.copy()
        for cy, cx, r, v, colour in discs:
            img[(yy - cy - v[0] * t) ** 2 + (xx - cx - v[1] * t) ** 2 < r * r] = colour
        frames.append(img.astype(np.uint8))
    return np.asarray(frames)


def h264(frames: np.ndarray, width: int, height: int, crf: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(width=width, height=height)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.asarray([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def media(frames: np.ndarray) -> Media:
    return Media(frames=frames, timestamps_s=tuple(float(i) for i in range(len(frames))), kind="video")


@pytest.fixture(scope="module")
def videos() -> dict[str, np.ndarray]:
    original = decode(h264(scene(1), 320, 240, crf=20))
    return {
        "original": original,
        # re-encoded at a quarter of the pixels and a much lower quality
        "copy": decode(h264(original, 160, 120, crf=38)),
        # the copy, one second shorter and a bit brighter
        "trimmed": np.clip(decode(h264(original[1:], 160, 120, crf=30)).astype(np.int16) + 20, 0, 255)
        .astype(np.uint8),
        "other": decode(h264(scene(2), 320, 240, crf=20)),
        "third": decode(h264(scene(3), 320, 240, crf=20)),
    }


@pytest.fixture(scope="module")
def results(videos) -> dict[str, dict]:
    model = create_model("fingerprint", max_batch=64)
    model.load(torch.device("cpu"))
    names = list(videos)
    outs = model.predict([model.prepare(media(videos[n])) for n in names])
    return dict(zip(names, outs))


def test_reencoded_resized_copy_is_close_and_other_videos_are_far(results):
    orig = results["original"]
    near = hamming_distance(orig["hash"], results["copy"]["hash"])
    far = [hamming_distance(orig["hash"], results[n]["hash"]) for n in ("other", "third")]
    assert near <= 6, near
    assert min(far) >= 16, far
    assert frame_set_distance(orig["frame_hashes"], results["copy"]["frame_hashes"]) <= 4
    assert frame_set_distance(orig["frame_hashes"], results["other"]["frame_hashes"]) >= 16


def test_trimmed_brightened_copy_stays_close_by_frame_set_distance(results):
    orig, trimmed = results["original"], results["trimmed"]
    assert trimmed["frames"] == 7
    assert frame_set_distance(orig["frame_hashes"], trimmed["frame_hashes"]) <= 6
    assert frame_set_distance(orig["frame_hashes"], results["third"]["frame_hashes"]) >= 16


def test_result_shape(results):
    r = results["original"]
    assert r["frames"] == 8 and r["bits"] == 64 and len(r["frame_hashes"]) == 8
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in [r["hash"], *r["frame_hashes"]])
    assert r["timestamps_s"] == [float(i) for i in range(8)]


def test_hashes_do_not_depend_on_batch_company(videos, results):
    model = create_model("fingerprint")
    model.load(torch.device("cpu"))
    for name in ("copy", "other"):
        (alone,) = model.predict([model.prepare(media(videos[name]))])
        assert alone == results[name]


def test_dct_matrix_matches_opencv():
    block = np.random.default_rng(0).uniform(0, 1, (32, 32)).astype(np.float32)
    d = dct_matrix(32)
    ours = (d @ torch.from_numpy(block) @ d.T).numpy()
    np.testing.assert_allclose(ours, cv2.dct(block), atol=1e-4)
    np.testing.assert_allclose((d @ d.T).numpy(), np.eye(32), atol=1e-5)


def test_hash_bits_follow_the_low_frequencies():
    # left half bright: the horizontal first AC coefficient is strongly positive, its bit set;
    # flipping the image left-right negates it
    img = np.zeros((1, 64, 64, 3), np.uint8)
    img[:, :, :32] = 255
    model = create_model("fingerprint")
    model.load(torch.device("cpu"))
    a, b = model.predict([model.prepare(media(img)), model.prepare(media(img[:, :, ::-1].copy()))])
    def bit_01(h):
        return (int(h, 16) >> (63 - 1)) & 1      # row 0, column 1 of the 8x8 block
    assert (bit_01(a["hash"]), bit_01(b["hash"])) == (1, 0)


def test_hamming_distance():
    assert hamming_distance("ffffffffffffffff", "ffffffffffffffff") == 0
    assert hamming_distance("0000000000000000", "ffffffffffffffff") == 64
    assert hamming_distance("00000000000000f0", "0000000000000010") == 3
    with pytest.raises(ValueError):
        frame_set_distance([], ["00"])
