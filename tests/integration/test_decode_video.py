"""Video frames from real H.264 files: exact timestamps, modes, rotation, VFR, broken files, caps."""
from __future__ import annotations

import struct
import threading

import numpy as np
import pytest

from sidepath.core.errors import DecodeError
from sidepath.decoders import DecodeSpec, Fetcher, decode_media
from tests.fixtures.media import frame_number, make_audio, make_video, marker_quadrant, truncated_copy


@pytest.fixture
def fetcher(tmp_path):
    return Fetcher(file_roots=[str(tmp_path)])


def frames_of(path, fetcher, **spec):
    return decode_media(str(path), "video", DecodeSpec(**spec), fetcher)


def assert_real(media, fps):
    """Every returned frame is the one the video shows at its timestamp."""
    for frame, t in zip(media.frames, media.timestamps_s):
        assert frame_number(frame) == round(t * fps), (t, frame_number(frame))


@pytest.mark.parametrize("keyint, bframes", [(25, 2), (100, 3), (1, 0)], ids=["gop1s", "gop4s-bframes", "intra"])
def test_exact_mode_returns_the_frame_at_each_second(tmp_path, fetcher, keyint, bframes):
    path = make_video(tmp_path / "v.mp4", seconds=6, fps=25, keyint=keyint, bframes=bframes, audio=False)
    media = frames_of(path, fetcher)
    assert media.kind == "video"
    assert media.timestamps_s == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    assert media.frames.shape == (6, 120, 160, 3) and media.frames.dtype == np.uint8
    assert [frame_number(f) for f in media.frames] == [0, 25, 50, 75, 100, 125]
    assert media.duration_s == pytest.approx(6.0, abs=0.05)


def test_exact_frames_are_pixel_identical_to_a_full_decode(tmp_path, fetcher):
    import av

    path = make_video(tmp_path / "v.mp4", seconds=5, fps=25, keyint=50, bframes=3, audio=False)
    media = frames_of(path, fetcher, fps=2)
    with av.open(str(path)) as c:
        every = {round(float(f.time), 3): f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    assert len(media.timestamps_s) == 10
    for frame, t in zip(media.frames, media.timestamps_s):
        assert np.array_equal(frame, every[round(t, 3)])


def test_other_rates_and_offgrid_frame_times(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=4, fps=30, keyint=60, audio=False)
    media = frames_of(path, fetcher, fps=3)
    assert len(media.timestamps_s) == 12
    assert media.timestamps_s[:4] == pytest.approx((0.0, 1 / 3, 2 / 3, 1.0), abs=1e-3)
    assert_real(media, 30)


def test_long_video_is_spread_evenly_under_max_frames(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=20, fps=10, size=(96, 64), keyint=20, audio=False)
    media = frames_of(path, fetcher, max_frames=4)
    assert media.timestamps_s == (0.0, 5.0, 10.0, 15.0)
    assert_real(media, 10)


def test_max_duration_caps_sampling(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=6, fps=10, size=(96, 64), audio=False)
    media = frames_of(path, fetcher, max_duration_s=2.5)
    assert media.timestamps_s == (0.0, 1.0, 2.0)


def test_variable_frame_rate_keeps_real_timestamps(tmp_path, fetcher):
    times = [0.0, 0.04, 0.08, 0.12, 2.6, 2.64, 2.68, 4.1, 4.14]     # a 2.5 s still, then another gap
    path = make_video(tmp_path / "vfr.mp4", timestamps=times, fps=25, audio=False)
    media = frames_of(path, fetcher)
    assert media.timestamps_s == (0.0, 2.6, 4.1)
    assert [frame_number(f) for f in media.frames] == [0, 4, 7]


@pytest.mark.parametrize("rotate, shape, quadrant", [
    (-90, (160, 120), "top-right"),     # stored like a phone held upright: display turns 90 clockwise
    (90, (160, 120), "bottom-left"),
    (180, (120, 160), "bottom-right"),
])
def test_rotation_metadata_is_applied(tmp_path, fetcher, rotate, shape, quadrant):
    path = make_video(tmp_path / "rot.mp4", seconds=1, fps=10, rotate=rotate, audio=False)
    media = frames_of(path, fetcher)
    assert media.frames.shape[1:3] == shape
    assert marker_quadrant(media.frames[0]) == quadrant


def test_max_side_downscales_in_the_decoder(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=2, fps=10, size=(320, 240), audio=False)
    media = frames_of(path, fetcher, max_side=80)
    assert media.frames.shape == (2, 60, 80, 3)


def test_fast_mode_frames_are_real_and_near_the_targets(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=6, fps=25, keyint=50, bframes=3, audio=False)
    media = frames_of(path, fetcher, video_mode="fast")
    assert len(media.timestamps_s) == 6
    for target, t in zip(range(6), media.timestamps_s):
        assert target <= t + 1e-3 < target + 0.5
    assert_real(media, 25)


def test_keyframes_mode_returns_keyframes_only(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=8, fps=25, keyint=50, audio=False)   # a keyframe every 2 s
    media = frames_of(path, fetcher, video_mode="keyframes")
    assert media.timestamps_s == (0.0, 2.0, 4.0, 6.0)
    assert_real(media, 25)


def test_unknown_mode_is_refused(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=1, fps=10, audio=False)
    with pytest.raises(DecodeError, match=r"unknown video mode 'turbo'; use one of exact, fast, keyframes"):
        frames_of(path, fetcher, video_mode="turbo")


def test_stream_with_a_late_start_is_timed_from_its_start(tmp_path, fetcher):
    path = make_video(tmp_path / "v.ts", seconds=5, fps=25, container_format="mpegts", audio=False)
    media = frames_of(path, fetcher)
    assert media.timestamps_s == pytest.approx((0.0, 1.0, 2.0, 3.0, 4.0), abs=1e-3)
    assert_real(media, 25)


def _patch_mdhd_duration(data: bytes, divide: int) -> bytes:
    """The media header claims a duration ``divide`` times shorter than the samples last."""
    out = bytearray(data)
    i = out.index(b"mdhd")
    version = out[i + 4]
    assert version == 0
    (duration,) = struct.unpack(">I", out[i + 20:i + 24])
    out[i + 20:i + 24] = struct.pack(">I", duration // divide)
    return bytes(out)


def test_wrong_duration_does_not_cut_the_video(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=8, fps=10, size=(96, 64), audio=False)
    path.write_bytes(_patch_mdhd_duration(path.read_bytes(), 4))
    media = frames_of(path, fetcher)
    assert media.timestamps_s == tuple(float(i) for i in range(8))
    assert_real(media, 10)
    assert media.duration_s == pytest.approx(7.9, abs=0.01)     # what the packets showed, not the header
    spread = frames_of(path, fetcher, max_frames=4)
    assert spread.timestamps_s == (0.0, 2.0, 4.0, 6.0)          # still over the whole video


def test_missing_duration_still_spreads_over_the_whole_video(tmp_path, fetcher):
    import av

    path = make_video(tmp_path / "live.mkv", seconds=20, fps=10, size=(96, 64), audio=False,
                      container_format="matroska", streamed=True)
    with av.open(str(path)) as c:
        assert c.duration is None and c.streams.video[0].duration is None
    media = frames_of(path, fetcher, max_frames=4)
    assert len(media.timestamps_s) == 4
    assert media.timestamps_s[0] == 0.0 and media.timestamps_s[-1] >= 15
    assert media.duration_s == pytest.approx(19.9, abs=0.01)
    assert_real(media, 10)


def test_truncated_download_keeps_the_frames_before_the_cut(tmp_path, fetcher):
    full = make_video(tmp_path / "full.mp4", seconds=6, fps=25, faststart=True, audio=False)
    cut = truncated_copy(full, tmp_path / "cut.mp4", 0.5)
    media = frames_of(cut, fetcher)
    assert 1 <= len(media.timestamps_s) < 6
    assert media.timestamps_s[0] == 0.0
    assert_real(media, 25)
    assert any("truncated file?" in note for note in media.notes)


def test_truncated_file_without_an_index_is_a_decode_error(tmp_path, fetcher):
    full = make_video(tmp_path / "full.mp4", seconds=2, fps=25, audio=False)      # index at the end
    cut = truncated_copy(full, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(DecodeError, match=r"not a playable media file: \d+ bytes") as info:
        frames_of(cut, fetcher)
    assert "\n" not in str(info.value)


def test_empty_file_is_a_decode_error(tmp_path, fetcher):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"^empty file: 0 bytes from"):
        frames_of(tmp_path / "empty.mp4", fetcher)


def test_text_is_not_a_video(tmp_path, fetcher):
    (tmp_path / "note.mp4").write_bytes(b"this is not a video at all, just words" * 10)
    with pytest.raises(DecodeError, match=r"not a playable media file: 380 bytes, starts with text 'this is"):
        frames_of(tmp_path / "note.mp4", fetcher)


def test_audio_file_has_no_video_stream(tmp_path, fetcher):
    path = make_audio(tmp_path / "a.m4a", seconds=1)
    with pytest.raises(DecodeError, match=r"no video stream in .*a\.m4a \(streams: audio\)"):
        frames_of(path, fetcher)


def test_video_pixel_cap(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=1, fps=10, audio=False)
    with pytest.raises(DecodeError, match=r"video frames are 160x120 = 19200 pixels, over decode.max_pixels=10000"):
        decode_media(str(path), "video", DecodeSpec(), Fetcher(file_roots=[str(tmp_path)], max_pixels=10_000))


def test_playlist_pointing_elsewhere_is_not_followed(tmp_path, fetcher, canary_server):
    playlist = (f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{canary_server.url('/seg0.ts')}\n"
                f"#EXT-X-ENDLIST\n").encode()
    (tmp_path / "list.m3u8").write_bytes(playlist)
    with pytest.raises(DecodeError, match="not a playable media file"):
        frames_of(tmp_path / "list.m3u8", fetcher)
    assert not canary_server.contacted


def test_decoding_in_parallel_threads_matches_sequential(tmp_path, fetcher):
    paths = [make_video(tmp_path / f"v{i}.mp4", seconds=3, fps=25, keyint=25 + 10 * i, audio=False)
             for i in range(3)]
    expected = [frames_of(p, fetcher) for p in paths]
    results: dict[int, object] = {}

    def work(i):
        results[i] = frames_of(paths[i], fetcher)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, exp in enumerate(expected):
        assert results[i].timestamps_s == exp.timestamps_s
        assert np.array_equal(results[i].frames, exp.frames)


def test_served_over_http(tmp_path, media_server):
    path = make_video(tmp_path / "v.mp4", seconds=3, fps=25)
    url = media_server.add_file("/v.mp4", path, content_type="video/mp4")
    media = decode_media(url, "video", DecodeSpec(), Fetcher(allow_hosts=media_server.allow_hosts))
    assert media.timestamps_s == (0.0, 1.0, 2.0)
    assert media.bytes_fetched == path.stat().st_size
    assert media.timings_ms["fetch"] >= 0 and media.timings_ms["decode"] >= 0


def test_shared_media_files_fixture(media_files):
    fetcher = Fetcher(file_roots=[str(media_files.dir)])
    video = decode_media(str(media_files.video), "video", DecodeSpec(audio=True), fetcher)
    assert video.timestamps_s == (0.0, 1.0, 2.0) and video.audio is not None
    silent = decode_media(str(media_files.silent_video), "video", DecodeSpec(), fetcher)
    assert silent.frames.shape[0] == 2
    for path in (media_files.jpeg, media_files.png):
        assert decode_media(str(path), "image", DecodeSpec(), fetcher).frames.shape == (1, 120, 160, 3)
    assert decode_media(str(media_files.wav), "audio", DecodeSpec(audio=True), fetcher).audio.size > 0
