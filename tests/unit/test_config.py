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
    """config.py checks decode modes without importing the decoders (OpenCV, PyAV); the lists must not drift."""
    from sidepath.decoders.hwaccel import HWACCEL_CHOICES
    from sidepath.decoders.video import VIDEO_MODES
    from sidepath.models.batching import BATCH_TUNING
    from sidepath.models.device import PRECISIONS
    from sidepath.worker.config import _CHOICES

    assert _CHOICES["decode.video_mode"] == VIDEO_MODES and _CHOICES["decode.hwaccel"] == HWACCEL_CHOICES
    assert _CHOICES["model.precision"] == PRECISIONS and _CHOICES["model.batch_tuning"] == BATCH_TUNING
