"""The model registry over the real `sidepath.models` entry points of the installed package."""
from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

import pytest
from click.testing import CliRunner

from sidepath.core.errors import ConfigError
from sidepath.models import ModelBase, available_models, create_model
from sidepath.models.registry import ENTRY_POINT_GROUP, model_class
from tests.failing_model import FailingModel

BUILT_INS = ("noop", "fingerprint", "embedding", "torchscript")


def test_built_in_models_are_found_through_entry_points():
    models = available_models()
    for name in BUILT_INS:
        assert name in models and models[name].name == name
        assert models[name].input_kind in ("frames", "audio") and models[name].batch_unit in ("frame", "clip")
        assert isinstance(models[name].options, dict)


def test_unknown_model_names_the_installed_ones():
    with pytest.raises(ConfigError) as err:
        create_model("fingerprnt")
    assert err.value.key == "model.name" and err.value.value == "fingerprnt"
    assert all(name in str(err.value) for name in BUILT_INS)


def test_a_class_can_be_named_by_module_path():
    model = create_model("tests.failing_model:FailingModel", max_batch=3)
    assert isinstance(model, FailingModel) and model.max_batch == 3


@pytest.mark.parametrize("name", ["sidepath.models.nothing:X", "sidepath.models.device:pick_device",
                                  "tests.failing_model:Missing"])
def test_a_bad_module_path_is_a_config_error(name):
    with pytest.raises(ConfigError, match="cannot import it"):
        create_model(name)


class OldStyle:
    """Has the model attributes but a constructor that takes no keywords."""

    name, version, input_kind, batch_unit = "old", "1", "frames", "clip"

    def __init__(self) -> None:
        pass

    def decode_spec(self): ...
    def load(self, device): ...
    def prepare(self, media): ...
    def units(self, prepared): ...
    def predict(self, batch): ...


def test_a_class_with_another_constructor_is_a_config_error():
    with pytest.raises(ConfigError, match="takes max_batch=, precision= and its options"):
        create_model(f"{__name__}:OldStyle")


def test_a_broken_plugin_is_skipped_when_listing_and_explained_when_chosen(caplog):
    eps = [EntryPoint("broken", "sidepath.models.no_such_module:Model", ENTRY_POINT_GROUP),
           EntryPoint("noop", "sidepath.models.noop:NoopModel", ENTRY_POINT_GROUP)]
    with caplog.at_level(logging.WARNING, logger="sidepath.models.registry"):
        assert list(available_models(eps)) == ["noop"]
    assert "broken" in caplog.text
    with pytest.raises(ConfigError, match="registered .* but cannot be imported"):
        model_class("broken", eps)


def test_unknown_option_names_the_key_and_the_known_ones():
    with pytest.raises(ConfigError) as err:
        create_model("embedding", options={"sise": 224})
    assert err.value.key == "model.options.sise" and "size" in str(err.value)


def test_options_from_environment_strings_are_converted():
    model = create_model("embedding", options={"size": "64", "channels_last": "true", "seed": "7"})
    assert model.input_size == (64, 64) and model.channels_last is True and model.opts["seed"] == 7
    with pytest.raises(ConfigError, match="expects a bool"):
        create_model("embedding", options={"channels_last": "maybe"})
    with pytest.raises(ConfigError, match="expects a int"):
        create_model("embedding", options={"dim": "many"})


@pytest.mark.parametrize(("kwargs", "key"), [({"precision": "fp8"}, "model.precision"),
                                             ({"max_batch": 0}, "model.max_batch")])
def test_bad_runtime_settings(kwargs, key):
    with pytest.raises(ConfigError) as err:
        create_model("noop", **kwargs)
    assert err.value.key == key


def test_every_call_gives_an_independent_instance():
    a, b = create_model("embedding", options={"size": 32}), create_model("embedding", options={"size": 48})
    assert a is not b and a.opts is not b.opts and (a.input_size, b.input_size) == ((32, 32), (48, 48))


def test_subclasses_keep_the_base_signature():
    class Tiny(ModelBase):
        name = "tiny"
        options = {"k": (1, "a number")}

    t = Tiny(max_batch=2, precision="fp16", k="3")
    assert (t.max_batch, t.precision, t.opts) == (2, "fp16", {"k": 3})


def test_models_command_lists_each_model_with_its_options():
    from sidepath.worker.cli.main import cli

    r = CliRunner().invoke(cli, ["models"])
    assert r.exit_code == 0, r.output
    for name in BUILT_INS:
        assert f"{name}  version=" in r.output
    assert "input_size = '224'" in r.output and "postprocess = 'softmax'" in r.output
