"""Soundtracks and audio files: mono float32 at the asked rate, caps, missing audio, "data" routing."""
from __future__ import annotations

import numpy as np
import pytest

from sidepath.core.errors import DecodeError
from sidepath.decoders import DecodeSpec, Fetcher, decode_media
from tests.fixtures.media import make_audio, make_image, make_video


@pytest.fixture
def fetcher(tmp_path):
    return Fetcher(file_roots=[str(tmp_path)])


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[int(np.argmax(spectrum))])


def test_soundtrack_of_a_video(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=3, fps=25, tone_hz=440)
    media = decode_media(str(path), "video", DecodeSpec(frames=True, audio=True, sample_rate=16000), fetcher)
    assert media.frames.shape[0] == 3
    assert media.audio.dtype == np.float32 and media.audio.ndim == 1 and media.sample_rate == 16000
    assert len(media.audio) == pytest.approx(3 * 16000, rel=0.05)
    assert peak_hz(media.audio, 16000) == pytest.approx(440, abs=3)
    assert 0.2 < np.abs(media.audio).max() <= 0.35          # the channels are averaged, not summed


def test_audio_only_spec_skips_the_frames(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=2, fps=25)
    media = decode_media(str(path), "video", DecodeSpec(frames=False, audio=True), fetcher)
    assert media.frames is None and media.audio is not None


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".m4a", ".mp3", ".ogg"])
def test_audio_formats(tmp_path, fetcher, suffix):
    path = make_audio(tmp_path / f"a{suffix}", seconds=2, sample_rate=22050, tone_hz=660)
    media = decode_media(str(path), "audio", DecodeSpec(audio=True, sample_rate=22050), fetcher)
    assert media.kind == "audio" and media.frames is None
    assert len(media.audio) == pytest.approx(2 * 22050, rel=0.06)
    assert peak_hz(media.audio, 22050) == pytest.approx(660, abs=3)


def test_stereo_file_is_downmixed(tmp_path, fetcher):
    path = make_audio(tmp_path / "s.wav", seconds=1, sample_rate=44100, channels=2)
    media = decode_media(str(path), "audio", DecodeSpec(audio=True, sample_rate=8000), fetcher)
    assert media.audio.ndim == 1 and len(media.audio) == pytest.approx(8000, rel=0.01)


def test_clicks_stay_where_they_were(tmp_path, fetcher):
    # a click every 0.5 s: after decoding and resampling they must still be on the beat grid
    path = make_audio(tmp_path / "beat.m4a", seconds=4, sample_rate=22050, tone_hz=0.0, click_bpm=120)
    audio = decode_media(str(path), "audio", DecodeSpec(audio=True, sample_rate=22050), fetcher).audio
    hop = 220
    env = np.array([np.abs(audio[i:i + hop]).max() for i in range(0, len(audio) - hop, hop)])
    onsets = [i * hop / 22050 for i in range(1, len(env)) if env[i] > 0.3 and env[i - 1] <= 0.3]
    assert len(onsets) >= 6
    assert all(abs(t - round(t * 2) / 2) < 0.03 for t in onsets)


def test_duration_cap(tmp_path, fetcher):
    path = make_audio(tmp_path / "long.flac", seconds=5, sample_rate=16000)
    media = decode_media(str(path), "audio", DecodeSpec(audio=True, sample_rate=16000, max_audio_s=1.5), fetcher)
    assert len(media.audio) == 24000


def test_video_without_audio_when_only_audio_is_wanted(tmp_path, fetcher):
    path = make_video(tmp_path / "silent.mp4", seconds=1, fps=10, audio=False)
    with pytest.raises(DecodeError, match=r"^video has no audio stream \(.*silent\.mp4, streams: video\)"):
        decode_media(str(path), "video", DecodeSpec(frames=False, audio=True), fetcher)


def test_video_without_audio_still_gives_frames_when_both_are_wanted(tmp_path, fetcher):
    path = make_video(tmp_path / "silent.mp4", seconds=1, fps=10, audio=False)
    media = decode_media(str(path), "video", DecodeSpec(frames=True, audio=True), fetcher)
    assert media.frames.shape[0] == 1 and media.audio is None
    assert any(n.startswith("video has no audio stream") for n in media.notes)


def test_image_has_no_audio(tmp_path, fetcher):
    make_image("png", path=tmp_path / "i.png")
    with pytest.raises(DecodeError, match="an image has no audio"):
        decode_media(str(tmp_path / "i.png"), "image", DecodeSpec(frames=False, audio=True), fetcher)


def test_truncated_audio_keeps_what_it_has(tmp_path, fetcher):
    path = make_audio(tmp_path / "a.wav", seconds=4, sample_rate=16000)
    data = path.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    media = decode_media(str(tmp_path / "cut.wav"), "audio", DecodeSpec(audio=True, sample_rate=16000), fetcher)
    assert len(media.audio) == pytest.approx(2 * 16000, rel=0.05)


def test_garbage_audio_is_a_decode_error(tmp_path, fetcher):
    (tmp_path / "x.mp3").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DecodeError):
        decode_media(str(tmp_path / "x.mp3"), "audio", DecodeSpec(audio=True), fetcher)


@pytest.mark.parametrize("name, kind", [("v.mp4", "video"), ("a.wav", "audio"), ("i.jpg", "image")])
def test_data_kind_is_resolved_from_the_content(tmp_path, fetcher, name, kind):
    if kind == "video":
        make_video(tmp_path / name, seconds=1, fps=10)
    elif kind == "audio":
        make_audio(tmp_path / name, seconds=1)
    else:
        make_image("jpeg", path=tmp_path / name)
    media = decode_media(str(tmp_path / name), "data", DecodeSpec(frames=True, audio=kind == "audio"), fetcher)
    assert media.kind == kind
    assert (media.frames is not None) == (kind != "audio")
