from __future__ import annotations

import pytest

from sidepath.core.errors import ConfigError
from sidepath.core.masking import mask_url
from sidepath.worker.config import load_config, masked


def test_file_then_env_overrides(tmp_path):
    p = tmp_path / "sidepath.toml"
    p.write_text('[kafka]\ntopic = "a"\n[deploy.replicas]\nhk = 3\n[model]\nmax_batch = 8\n')
    cfg = load_config(p, environ={"SIDEPATH_KAFKA_TOPIC": "b", "SIDEPATH_DEPLOY_REPLICAS_EU": "5",
                                  "SIDEPATH_DECODE_ALLOW_HOSTS": "a.example,b.example"})
    assert cfg.kafka.topic == "b" and cfg.deploy.replicas.hk == 3 and cfg.deploy.replicas.eu == 5
    assert cfg.model.max_batch == 8 and cfg.decode.allow_hosts == ["a.example", "b.example"]


@pytest.mark.parametrize("doc, env, key, fix", [
    ("[model]\nmax_batch = 0\n", {}, "model.max_batch", "greater than 0"),
    ("[kafka]\nauto_offset_reset = 'sometimes'\n", {}, "kafka.auto_offset_reset", "earliest"),
    ("[kafka]\ntopicc = 'x'\n", {}, "kafka.topicc", "unknown key"),
    ("", {"SIDEPATH_MODEL_MAX_BATCH": "lots"}, "model.max_batch", "SIDEPATH_MODEL_MAX_BATCH"),
    ("[deploy]\ngpu_memory = 'sixteen'\n", {}, "deploy.gpu_memory", "quantity"),
    ("[kafka]\nsasl_password = 'hunter2'\n", {}, "kafka.sasl_password", "SIDEPATH_KAFKA_SASL_PASSWORD"),
    ("[kafka]\nbootstrap_servers = 'nohostport'\n", {}, "kafka.bootstrap_servers", "host:port"),
    ("[service]\nname = 'Bad_Name'\n", {}, "service.name", "lowercase"),
    # what the hand-written coercion let through or said less clearly
    ("[model]\nmax_batch = 8.5\n", {}, "model.max_batch", "expected an integer"),
    ("[model]\nmax_batch = true\n", {}, "model.max_batch", "expected an integer"),
    ("[kafak]\ntopic = 'x'\n", {}, "kafak", "did you mean kafka"),
    ("kafka = 'x'\n", {}, "kafka", "use a [kafka] section"),
    ("", {"SIDEPATH_DECODE_ALLOW_HOSTS": "[oops"}, "decode.allow_hosts", "SIDEPATH_DECODE_ALLOW_HOSTS to a list"),
    ("", {"SIDEPATH_ENGINE_MAX_BYTES_PER_S": "-1"}, "engine.max_bytes_per_s", "0 or more (budget per worker"),
    ("[metrics]\nport = 70000\n", {}, "metrics.port", "use a TCP port 0..65535"),
    ("[live]\nmax_lag = 5\nresume_lag = 10\n", {}, "live.resume_lag", "live.max_lag=5"),
    ("[kafka]\nsecurity_protocol = 'SASL_SSL'\n", {}, "kafka.sasl_mechanism", "SASL needs a mechanism"),
    ("[kafka.consumer]\n'sasl.password' = 'hunter2'\n", {}, "kafka.consumer.sasl.password",
     "SIDEPATH_KAFKA_SASL_PASSWORD"),
])
def test_errors_name_key_value_and_fix(tmp_path, doc, env, key, fix):
    p = tmp_path / "c.toml"
    p.write_text(doc)
    with pytest.raises(ConfigError) as e:
        load_config(p, environ=env)
    assert e.value.key == key and fix in str(e.value)
    assert "hunter2" not in str(e.value)


def test_secrets_masked():
    cfg = load_config(None, environ={"SIDEPATH_KAFKA_SASL_PASSWORD": "s3cret",
                                     "SIDEPATH_SINKS_URLS": "postgresql+psycopg://bob:pw@db:5432/x"})
    shown = str(masked(cfg))
    assert "s3cret" not in shown and ":pw@" not in shown and "bob:***@db" in shown
    assert "s3cret" not in repr(cfg) and "s3cret" not in repr(cfg.kafka)    # a config in a log line or traceback
    assert mask_url("postgresql://u:p@h/d") == "postgresql://u:***@h/d"


def test_exactly_once_needs_kafka_sinks_on_the_source_cluster():
    base = {"kafka.bootstrap_servers": "127.0.0.1:9092,127.0.0.1:9093", "sinks.exactly_once": True}
    with pytest.raises(ConfigError, match="only kafka:// result sinks") as e:
        load_config(None, environ={}, overrides={**base, "sinks.urls": ["kafka://127.0.0.1:9092,127.0.0.1:9093/r",
                                                                       "sqlite:///r.db"]})
    assert e.value.key == "sinks.urls"
    with pytest.raises(ConfigError, match="on the source cluster"):
        load_config(None, environ={}, overrides={**base, "sinks.urls": ["kafka://127.0.0.3:9092/results"]})
    cfg = load_config(None, environ={}, overrides={**base, "sinks.urls": [
        "kafka://u:${PW}@127.0.0.1:9093,127.0.0.1:9092/results?compression.type=zstd"
        "&security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512"]})
    assert cfg.sinks.exactly_once


def test_allowed_values_are_the_owning_modules():
    """The config model checks decode modes without importing the decoders (OpenCV, PyAV); the lists must not drift."""
    from sidepath.decoders.hwaccel import HWACCEL_CHOICES
    from sidepath.decoders.video import VIDEO_MODES
    from sidepath.models.batching import BATCH_TUNING
    from sidepath.models.device import PRECISIONS
    from sidepath.worker.config_model import CHOICES

    assert CHOICES["decode.video_mode"] == VIDEO_MODES and CHOICES["decode.hwaccel"] == HWACCEL_CHOICES
    assert CHOICES["model.precision"] == PRECISIONS and CHOICES["model.batch_tuning"] == BATCH_TUNING


def test_every_key_has_a_type_and_a_meaning():
    """The key table, `config keys` and the chart's schema show each key's description: none may be blank."""
    from sidepath.worker.config import describe_keys

    keys = describe_keys()
    assert len(keys) > 80
    for key, typ, _default, env, meaning in keys:
        assert typ in ("str", "int", "float", "bool", "list", "dict") and env.startswith("SIDEPATH_")
        assert meaning.strip(), f"{key} has no description in worker/config_model.py"


def test_sections_take_keyword_arguments_and_validate():
    from pydantic import ValidationError

    from sidepath.worker.config import DecodeConfig, EngineConfig

    assert DecodeConfig(max_bytes=1234).max_bytes == 1234 and EngineConfig().max_crashes == 2
    with pytest.raises(ValidationError):
        EngineConfig(max_inflight_messages=0)
    with pytest.raises(ValidationError):
        EngineConfig(max_inflite_messages=5)        # a typo is refused, not ignored


def test_a_number_in_a_string_key_and_whole_floats_are_taken(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[deploy]\ncpu = 8\n[model]\nmax_batch = 8.0\n")
    cfg = load_config(p, environ={"SIDEPATH_DECODE_ALLOW_PRIVATE": "yes", "SIDEPATH_KAFKA_CONSUMER":
                                  '{"fetch.max.bytes": 1048576}'})
    assert cfg.deploy.cpu == "8" and cfg.model.max_batch == 8 and cfg.decode.allow_private is True
    assert cfg.kafka.consumer == {"fetch.max.bytes": 1048576}
