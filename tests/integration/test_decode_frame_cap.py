"""decode.max_pixels holds for every decoded frame, not only for the size the stream header gives.

The hostile video says 64x64 in its header and switches to 4000x3000 frames mid-stream.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from sidepath.core.errors import DecodeError
from sidepath.decoders import DecodeSpec, Fetcher, decode_media
from tests.fixtures.media import make_growing_video, make_video

MAX_PIXELS = 64 * 64 * 2
MAX_FRAMES = 32


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("growing")
    return make_growing_video(d / "grow.ts"), make_video(d / "small.mp4", seconds=2, fps=4, size=(64, 64))


def test_a_video_growing_past_the_pixel_cap_mid_stream_is_refused(videos):
    hostile, _small = videos
    fetcher = Fetcher(file_roots=[str(hostile.parent)], max_pixels=MAX_PIXELS)
    with pytest.raises(DecodeError, match=r"switches to frames of 4000x3000 = 12000000 pixels mid-stream, "
                                          rf"over decode.max_pixels={MAX_PIXELS}"):
        decode_media(str(hostile), "video", DecodeSpec(fps=2.0, max_frames=MAX_FRAMES), fetcher)


def test_the_same_video_decodes_when_the_cap_allows_its_frames(videos):
    hostile, _small = videos
    fetcher = Fetcher(file_roots=[str(hostile.parent)], max_pixels=4000 * 3000)
    media = decode_media(str(hostile), "video", DecodeSpec(fps=2.0, max_frames=MAX_FRAMES), fetcher)
    assert media.frames is not None and len(media.frames) == 26


_MEASURE = textwrap.dedent("""
    import json, resource, sys
    from sidepath.decoders import DecodeSpec, Fetcher, decode_media
    from sidepath.core.errors import DecodeError
    hostile, small, max_pixels, max_frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    spec = DecodeSpec(fps=2.0, max_frames=max_frames)
    fetcher = Fetcher(file_roots=["/"], max_pixels=max_pixels)
    decode_media(small, "video", spec, fetcher)          # the decoder's fixed cost, paid once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        decode_media(hostile, "video", spec, fetcher)
        outcome = "decoded"
    except DecodeError as exc:
        outcome = str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_bytes": (after - before) * 1024, "outcome": outcome}))
""")


def test_peak_memory_of_decoding_the_hostile_video_stays_under_the_caps(videos):
    """Peak RSS (a fresh process) grows by no more than what the caps allow: max_frames RGB frames
    of max_pixels, a decoder's few reference frames of max_pixels, and a fixed allowance."""
    hostile, small = videos
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(hostile), str(small), str(MAX_PIXELS),
                          str(MAX_FRAMES)], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "mid-stream" in report["outcome"]
    budget = MAX_FRAMES * MAX_PIXELS * 3 + 16 * MAX_PIXELS * 3 // 2 + 16 * 2**20
    # one 4000x3000 frame in the decoder's own format is 18 MB: the cap must stop it before that
    assert report["growth_bytes"] <= budget, report
