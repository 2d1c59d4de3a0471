"""GPU decoding (decode.hwaccel): config, start-up resolution, CPU fallback, and NVDEC vs software.

Most of these run on a machine without a GPU (the CPU-side contract); the last ones compare
NVDEC's frames with the software decoder's and skip unless NVDEC works here.
"""
from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import VideoReformatter

from sidepath.core.errors import ConfigError, DecodeError
from sidepath.decoders import DecodeSpec, Fetcher, decode_media
from sidepath.decoders import hwaccel as hw
from sidepath.decoders.video import software_layout
from sidepath.worker.config import load_config
from sidepath.worker.engine.pipeline import merged_spec
from tests.fixtures.media import frame_number, make_video, marker_quadrant

HAS_CUDA = torch.cuda.is_available()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="checks the behaviour without a GPU")
nvdec = pytest.mark.skipif(not HAS_CUDA or hw.nvdec_problem(None) is not None,
                           reason="needs a CUDA GPU with NVDEC")
MODES = ("exact", "fast", "keyframes")


@pytest.fixture(autouse=True)
def fresh_hwaccel_state(monkeypatch):
    """Each test starts from a process that has decoded nothing; monkeypatch puts the state back after."""
    monkeypatch.setattr(hw, "_broken", None)
    monkeypatch.setattr(hw, "_counts", dict.fromkeys(hw._counts, 0))
    probe = hw.nvdec_problem             # a test may replace it; clear the real cache
    probe.cache_clear()
    yield
    probe.cache_clear()


@pytest.fixture
def fetcher(tmp_path):
    return Fetcher(file_roots=[str(tmp_path)])


class _Model:
    def decode_spec(self) -> DecodeSpec:
        return DecodeSpec()


def _spec_for(hwaccel: str, **more: str) -> DecodeSpec:
    cfg = load_config(environ={}, overrides={"decode.hwaccel": hwaccel, **more})
    return merged_spec(cfg, [_Model()])


def _hw_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "sidepath.decoders.hwaccel" and r.levelno >= logging.WARNING]


# -- configuration --------------------------------------------------------------------------

def test_hwaccel_defaults_to_none_and_takes_the_choices():
    assert load_config(environ={}).decode.hwaccel == "none"
    assert DecodeSpec().hwaccel == "none"
    for choice in ("none", "cuda", "auto"):
        assert load_config(environ={"SIDEPATH_DECODE_HWACCEL": choice}).decode.hwaccel == choice


@pytest.mark.parametrize("bad", ["gpu", "nvdec", "CUDA:0", ""])
def test_other_hwaccel_values_are_config_errors(bad):
    with pytest.raises(ConfigError) as e:
        load_config(environ={}, overrides={"decode.hwaccel": bad})
    assert e.value.key == "decode.hwaccel" and "none, cuda, auto" in str(e.value)


def test_none_never_probes_the_gpu(monkeypatch):
    def boom(*_a):
        raise AssertionError("probed")
    monkeypatch.setattr(hw, "nvdec_problem", boom)
    assert _spec_for("none").hwaccel == "none"


# -- resolution at start, on this machine ---------------------------------------------------

@no_cuda
def test_auto_resolves_to_none_without_a_gpu(caplog):
    caplog.set_level(logging.INFO, logger="sidepath.decoders.hwaccel")
    assert _spec_for("auto").hwaccel == "none"
    assert any("decoded on the CPU" in m and "no CUDA device" in m for m in caplog.messages)


@no_cuda
def test_cuda_without_a_gpu_fails_at_start_with_the_fix():
    with pytest.raises(ConfigError) as e:
        _spec_for("cuda")
    msg = str(e.value)
    assert e.value.key == "decode.hwaccel" and "\n" not in msg
    assert "no CUDA device is visible" in msg and "use auto or none" in msg


@no_cuda
def test_probe_decodes_for_real_and_does_not_trust_torch_alone(monkeypatch):
    """torch seeing a GPU is not enough: the FFmpeg inside PyAV must open it and decode a clip."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert hw.nvdec_problem(None).startswith("NVDEC could not decode a test clip")
    assert hw.nvdec_problem(5).startswith("CUDA device 5 is not visible")
    with pytest.raises(ConfigError, match="NVDEC could not decode a test clip"):
        _spec_for("cuda", **{"model.device": "cuda:1"})


def test_model_device_picks_the_nvdec_device(monkeypatch):
    seen = []
    monkeypatch.setattr(hw, "nvdec_problem", lambda index=None: seen.append(index))
    assert _spec_for("cuda", **{"model.device": "cuda:1"}).hwaccel == "cuda:1"
    assert _spec_for("auto").hwaccel == "cuda"
    assert seen == [1, None]


# -- decoding with hwaccel=cuda where the device cannot be opened ---------------------------

@no_cuda
@pytest.mark.parametrize("mode", MODES)
def test_cuda_spec_without_a_gpu_gives_the_software_frames(tmp_path, fetcher, caplog, mode):
    path = make_video(tmp_path / "v.mp4", seconds=5, fps=25, keyint=50, bframes=3, audio=True)
    soft = decode_media(str(path), "video", DecodeSpec(video_mode=mode, audio=True), fetcher)
    for _ in range(3):
        gpu = decode_media(str(path), "video", DecodeSpec(video_mode=mode, audio=True, hwaccel="cuda"), fetcher)
        assert gpu.timestamps_s == soft.timestamps_s
        assert np.array_equal(gpu.frames, soft.frames)
        assert np.array_equal(gpu.audio, soft.audio)
        assert gpu.duration_s == soft.duration_s and gpu.notes == soft.notes
    assert len(_hw_warnings(caplog)) == 1, caplog.messages        # one line, at first use
    assert "decoding video on the CPU from now on" in _hw_warnings(caplog)[0]
    assert hw.stats()["device_failures"] == 1 and hw.stats()["given_up"]


@no_cuda
@pytest.mark.parametrize("rotate", [90, 180])
def test_cuda_spec_without_a_gpu_keeps_rotation(tmp_path, fetcher, rotate):
    path = make_video(tmp_path / "rot.mp4", seconds=1, fps=10, rotate=rotate, audio=False)
    media = decode_media(str(path), "video", DecodeSpec(hwaccel="cuda"), fetcher)
    soft = decode_media(str(path), "video", DecodeSpec(), fetcher)
    assert np.array_equal(media.frames, soft.frames)
    assert marker_quadrant(media.frames[0]) == marker_quadrant(soft.frames[0])


@no_cuda
def test_a_broken_file_is_not_blamed_on_the_gpu(tmp_path, fetcher, caplog):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"<html>not a video</html>" * 40)
    with pytest.raises(DecodeError, match="not a playable media file"):
        decode_media(str(bad), "video", DecodeSpec(hwaccel="cuda"), fetcher)
    assert hw.stats()["given_up"] is None and not _hw_warnings(caplog)


def test_a_video_nvdec_fails_on_is_decoded_again_on_the_cpu(tmp_path, fetcher, caplog, monkeypatch):
    import sidepath.decoders.video as video

    path = make_video(tmp_path / "v.mp4", seconds=3, audio=False)
    real, calls = video._decode_video, []

    def nvdec_breaks(fetched, spec, max_pixels, hwaccel):
        calls.append(hwaccel is not None)
        if hwaccel is not None:
            raise video._GpuFailed("decoding stopped early: Generic error in an external library")
        return real(fetched, spec, max_pixels, None)

    monkeypatch.setattr(video, "_decode_video", nvdec_breaks)
    monkeypatch.setattr(hw, "hwaccel_for", lambda value: object() if value == "cuda" else None)
    media = decode_media(str(path), "video", DecodeSpec(hwaccel="cuda"), fetcher)
    assert calls == [True, False] and media.timestamps_s == (0.0, 1.0, 2.0)
    assert [frame_number(f) for f in media.frames] == [0, 25, 50]
    assert hw.stats()["cpu_retries"] == 1
    assert len(_hw_warnings(caplog)) == 1 and "decoded it again on the CPU" in _hw_warnings(caplog)[0]


def test_unknown_spec_hwaccel_is_a_decode_error(tmp_path, fetcher):
    path = make_video(tmp_path / "v.mp4", seconds=1, audio=False)
    with pytest.raises(DecodeError, match="unknown hwaccel 'vulkan'"):
        decode_media(str(path), "video", DecodeSpec(hwaccel="vulkan"), fetcher)


# -- what NVDEC surfaces become (simulated on the CPU) --------------------------------------

def test_nvdec_surface_layout_converts_to_the_software_pixels(tmp_path):
    """NVDEC's frames reach host memory as NV12; re-laid out as yuv420p they give the very RGB
    of the software path, while converting NV12 to RGB directly would not (so this can fail)."""
    path = make_video(tmp_path / "v.mp4", seconds=1, fps=10, audio=False)
    r = VideoReformatter()
    direct_diffs = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            soft = r.reformat(frame, format="rgb24").to_ndarray()
            surface = frame.reformat(format="nv12")             # what av_hwframe_transfer_data gives
            assert software_layout(frame, r) is frame           # software frames pass through
            relaid = software_layout(surface, r)
            assert relaid.format.name == "yuv420p"
            assert np.array_equal(r.reformat(relaid, format="rgb24").to_ndarray(), soft)
            direct = r.reformat(surface, format="rgb24").to_ndarray()
            direct_diffs.append(np.abs(direct.astype(int) - soft).mean())
    assert max(direct_diffs) > 0.1


def test_ten_bit_surfaces_are_relaid_losslessly():
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 1024, (96 * 3 // 2, 128), dtype=np.uint16)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p10le")
    relaid = software_layout(frame.reformat(format="p010le"), VideoReformatter())
    assert relaid.format.name == "yuv420p10le" and np.array_equal(relaid.to_ndarray(), planes)


# -- NVDEC itself (GPU machines only) -------------------------------------------------------

@nvdec
@pytest.mark.parametrize("mode", MODES)
def test_nvdec_frames_match_software(tmp_path, fetcher, mode):
    path = make_video(tmp_path / "v.mp4", seconds=6, fps=25, size=(320, 240), keyint=50, bframes=3, audio=False)
    soft = decode_media(str(path), "video", DecodeSpec(video_mode=mode), fetcher)
    gpu = decode_media(str(path), "video", DecodeSpec(video_mode=mode, hwaccel="cuda"), fetcher)
    assert hw.stats()["nvdec_videos"] == 1, hw.stats()
    assert gpu.timestamps_s == soft.timestamps_s
    assert gpu.frames.shape == soft.frames.shape and gpu.frames.dtype == np.uint8
    # H.264 decoding is bit-exact and the RGB conversion is shared: expect 0; allow a few levels
    # (fast mode: NVDEC always runs the loop filter that software fast mode skips)
    limit = 3.0 if mode == "fast" else 0.5
    assert np.abs(gpu.frames.astype(int) - soft.frames).mean() <= limit
    assert [frame_number(f) for f in gpu.frames] == [frame_number(f) for f in soft.frames]


@nvdec
def test_nvdec_keeps_rotation_and_max_side(tmp_path, fetcher):
    path = make_video(tmp_path / "rot.mp4", seconds=2, fps=10, size=(320, 240), rotate=90, audio=False)
    soft = decode_media(str(path), "video", DecodeSpec(max_side=100), fetcher)
    gpu = decode_media(str(path), "video", DecodeSpec(max_side=100, hwaccel="cuda"), fetcher)
    assert gpu.frames.shape == soft.frames.shape == (2, 100, 75, 3)
    assert marker_quadrant(gpu.frames[0]) == marker_quadrant(soft.frames[0])
    assert np.abs(gpu.frames.astype(int) - soft.frames).mean() <= 0.5


@nvdec
def test_cuda_resolves_on_a_gpu_machine():
    assert _spec_for("cuda").hwaccel == "cuda"
    assert _spec_for("auto").hwaccel == "cuda"


def test_nvdec_counts_are_exported_as_metrics():
    """Operators see NVDEC falling back to the CPU (a throughput cliff) on /metrics."""
    from sidepath.worker.ops.metrics import build_metrics

    m = build_metrics()
    assert m.registry.get_sample_value("sidepath_nvdec_disabled") == 0
    hw.note_hw_decode(on_nvdec=True)
    hw.note_hw_decode(on_nvdec=False)
    hw.device_failed("test: no device")
    assert m.registry.get_sample_value("sidepath_nvdec_videos_total", {"how": "nvdec"}) == 1
    assert m.registry.get_sample_value("sidepath_nvdec_videos_total", {"how": "software"}) == 1
    assert m.registry.get_sample_value("sidepath_nvdec_device_failures_total") == 1
    assert m.registry.get_sample_value("sidepath_nvdec_disabled") == 1
