"""The models tests and benchmarks lean on: FailingModel (the predict-raises contract) and noop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sidepath.core.errors import ConfigError, FatalError, ModelError
from sidepath.decoders.base import Media
from sidepath.models import create_model

FAILING = "tests.failing_model:FailingModel"


def _image(width: int, frames: int = 1) -> Media:
    return Media(frames=np.zeros((frames, 10, width, 3), np.uint8), timestamps_s=tuple(range(frames)), kind="image")


def _failing(**options):
    model = create_model(FAILING, options=options)
    model.load(torch.device("cpu"))
    return model


def test_predict_raises_for_a_batch_holding_the_marked_item():
    model = _failing()
    good, bad = model.prepare(_image(20)), model.prepare(_image(13))
    with pytest.raises(ModelError) as err:
        model.predict([good, bad, good])
    assert err.value.stage == "infer" and "13 px wide" in str(err.value)
    assert model.predict([good, good]) == [{"width": 20, "frames": 1}] * 2
    assert model.calls == [3, 2]


def test_the_bad_item_alone_is_found_by_splitting_the_batch():
    # what the engine does (halve until one item is left); here only to pin the contract down
    model = _failing(fail_width=17)
    items = [model.prepare(_image(w)) for w in (20, 21, 17, 22)]

    def isolate(batch):
        try:
            return model.predict(batch)
        except ModelError as exc:
            if len(batch) == 1:
                return [exc]
            mid = len(batch) // 2
            return isolate(batch[:mid]) + isolate(batch[mid:])

    outs = isolate(items)
    assert [isinstance(o, ModelError) for o in outs] == [False, False, True, False]
    assert outs[3] == {"width": 22, "frames": 1}


def test_prepare_and_load_modes():
    model = _failing(fail_in="prepare")
    assert model.prepare(_image(20))["bad"] is False
    with pytest.raises(ModelError, match="fail_in=prepare"):
        model.prepare(_image(13))
    with pytest.raises(FatalError):
        _failing(fail_in="load")
    with pytest.raises(ConfigError):
        create_model(FAILING, options={"fail_in": "sometimes"})
    never = _failing(fail_in="never")
    assert never.predict([never.prepare(_image(13))]) == [{"width": 13, "frames": 1}]


def test_noop_reports_what_it_was_given():
    model = create_model("noop", options={"audio": True})
    model.load(torch.device("cpu"))
    assert model.decode_spec().audio is True and model.decode_spec().frames is True
    video = Media(frames=np.zeros((4, 6, 8, 3), np.uint8), audio=np.zeros(11025, np.float32), sample_rate=22050,
                  kind="video")
    audio = Media(audio=np.zeros(44100, np.float32), sample_rate=22050, kind="audio")
    outs = model.predict([model.prepare(video), model.prepare(audio)])
    assert outs == [{"kind": "video", "frames": 4, "audio_s": 0.5, "width": 8, "height": 6},
                    {"kind": "audio", "frames": 0, "audio_s": 2.0, "width": 0, "height": 0}]
    assert model.units(model.prepare(video)) == 1           # clips, not frames
    model.warmup()
