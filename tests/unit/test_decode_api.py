"""The public surface of sidepath.decoders: what the engine and the models import."""
from __future__ import annotations

import inspect

import pytest

import sidepath.decoders as decoders
from sidepath.core.errors import ConfigError
from sidepath.decoders import DecodeSpec, Fetcher, Media
from sidepath.worker.config import DecodeConfig


def test_exported_names_exist():
    for name in decoders.__all__:
        assert getattr(decoders, name) is not None, name


def test_engine_signatures():
    params = inspect.signature(Fetcher).parameters
    for name in ("max_bytes", "timeout_s", "retries", "allow_hosts", "allow_private", "file_roots", "max_pixels"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert list(inspect.signature(decoders.decode_media).parameters) == ["ref", "kind", "spec", "fetcher"]


def test_fetcher_from_config_takes_the_decode_section():
    cfg = DecodeConfig(max_bytes=1234, max_pixels=99, allow_hosts=["media.test"], file_roots=["/srv/media"])
    fetcher = Fetcher.from_config(cfg, threads=4, retries=0)
    assert (fetcher.max_bytes, fetcher.max_pixels, fetcher.retries) == (1234, 99, 0)
    assert fetcher.guard.allow_hosts == ("media.test",)
    assert [str(r) for r in fetcher.local.roots] == ["/srv/media"]


def test_fetcher_from_config_keeps_the_per_host_limits_and_a_pool_per_thread():
    cfg = DecodeConfig(max_connections_per_host=3, max_requests_per_s_per_host=2.5)
    with Fetcher.from_config(cfg, threads=12) as fetcher:
        assert (fetcher.http.limits.max_connections, fetcher.http.limits.requests_per_s) == (3, 2.5)
        # one kept connection per decode thread and host: a smaller pool would discard them
        assert fetcher.http.pool.connection_pool_kw["maxsize"] == 12
    with Fetcher.from_config(cfg, threads=1) as fetcher:
        assert fetcher.http.pool.connection_pool_kw["maxsize"] == 2


@pytest.mark.parametrize("kwargs, key", [
    ({"max_bytes": 0}, "decode.max_bytes"), ({"timeout_s": -1}, "decode.timeout_s"),
    ({"retries": -1}, "decode.retries"), ({"max_pixels": 0}, "decode.max_pixels"),
    ({"allow_hosts": "media.test"}, "decode.allow_hosts"),
])
def test_bad_fetcher_options_are_config_errors(kwargs, key):
    with pytest.raises(ConfigError, match=rf"^config {key}="):
        Fetcher(**kwargs)


def test_media_defaults_stay_compatible():
    m = Media()
    assert m.frames is None and m.timestamps_s == () and m.kind == "image" and m.nbytes == 0
    assert m.duration_s is None and m.notes == ()
    assert DecodeSpec().fps == 1.0 and DecodeSpec().video_mode == "exact"
