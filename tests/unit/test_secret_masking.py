"""Secrets never reach a log or a message: one masking function, property-tested."""
from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidepath.core.errors import ConfigError
from sidepath.core.masking import is_secret_key, mask_url
from sidepath.decoders.refs import shown
from sidepath.worker.config import load_config, masked

# "§" appears nowhere else in the generated URLs: a secret found in the output is a leak,
# not a coincidence with a host or path
_MARK = "\u00a7"
_PASSWORD_CHARS = st.characters(codec="utf-8", exclude_characters="/?#\n\r\t ", exclude_categories=("Cs", "Cc"))
_SCHEMES = st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql", "kafka", "http", "https",
                            "redis", "amqp"]).flatmap(
    lambda s: st.sampled_from([s, s.upper(), s.capitalize()]))
_SECRET_KEYS = st.sampled_from(["password", "passwd", "pwd", "secret", "token", "key", "sasl.password",
                                "ssl.key.password", "sslpassword", "api_key", "access_token",
                                "client_secret", "X-Amz-Signature", "sig", "auth"]).flatmap(
    lambda k: st.sampled_from([k, k.upper(), k.title()]))
_HOST = st.from_regex(r"[a-z][a-z0-9\-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True)
_PLAIN = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@st.composite
def urls_with_secrets(draw):
    secrets: list[str] = []
    scheme = draw(_SCHEMES)
    userinfo = ""
    if draw(st.booleans()):
        password = _MARK + draw(st.text(_PASSWORD_CHARS, min_size=1, max_size=20))
        secrets.append(password)
        user = draw(_PLAIN)
        if draw(st.booleans()):
            password = quote(password, safe="")       # as the sink registry expands ${VAR}
            secrets.append(password)
        userinfo = f"{user}:{password}@"
    hosts = ",".join(f"{draw(_HOST)}" + (f":{draw(st.integers(1, 65535))}" if draw(st.booleans()) else "")
                     for _ in range(draw(st.integers(1, 3))))
    path = "/" + draw(_PLAIN)
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            value = _MARK + draw(st.text(_PASSWORD_CHARS, min_size=1, max_size=20))
            secrets.append(quote(value, safe=""))
            pairs.append(f"{draw(_SECRET_KEYS)}={quote(value, safe='')}")
        else:
            pairs.append(f"{draw(_PLAIN)}={draw(_PLAIN)}")
    query = ("?" + "&".join(pairs)) if pairs else ""
    return f"{scheme}://{userinfo}{hosts}{path}{query}", secrets


@settings(max_examples=400, deadline=None)
@given(urls_with_secrets())
def test_no_secret_survives_masking(case):
    url, secrets = case
    for keep_user in (True, False):
        out = mask_url(url, keep_user=keep_user)
        assert _MARK not in out and "%C2%A7" not in out, (url, out)
        for secret in secrets:
            assert secret not in out


@settings(max_examples=200, deadline=None)
@given(urls_with_secrets())
def test_masking_keeps_the_parts_that_are_not_secret(case):
    url, _secrets = case
    out = mask_url(url)
    assert out.split("://")[0] == url.split("://")[0]
    assert mask_url(out) == out          # idempotent: masking twice changes nothing more


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:p@ss@db:5432/x", "postgresql://u:***@db:5432/x"),
    ("POSTGRESQL+PSYCOPG://U:pw@db/x", "POSTGRESQL+PSYCOPG://U:***@db/x"),
    ("postgresql://u@db/x?password=pw&sslmode=require", "postgresql://u@db/x?password=***&sslmode=require"),
    ("kafka://h:9092/t?SSL.KEY.PASSWORD=pw&sasl.password=pw2", "kafka://h:9092/t?SSL.KEY.PASSWORD=***&sasl.password=***"),
    ("http://u:pa/ss@host/db", "http://u:***@host/db"),
    ("https://cdn.test:443/@alice/v.mp4", "https://cdn.test:443/@alice/v.mp4"),
    ("sqlite:///./var/results.db?table=r", "sqlite:///./var/results.db?table=r"),
])
def test_mask_url_examples(url, expected):
    assert mask_url(url) == expected


def test_shown_media_references_hide_signed_url_tokens():
    assert shown("https://cdn.test/v.mp4?X-Amz-Signature=abc123&w=1") == "https://cdn.test/v.mp4?X-Amz-Signature=***&w=1"


def test_secret_keys_are_recognised_case_insensitively():
    assert all(is_secret_key(k) for k in ("sasl.password", "SSL.KEY.PASSWORD", "Token", "pass%77ord"))
    assert not any(is_secret_key(k) for k in ("table", "on_conflict", "fetch.max.bytes", "sslmode"))


def test_the_sql_sink_never_logs_an_expanded_password(tmp_path, monkeypatch, caplog):
    """The SQL sink logs its URL after ${VAR} expansion (here: unreachable at start, a warning)."""
    from sidepath.sinks import open_sink
    monkeypatch.setenv("SP_TEST_DB_PASSWORD", "hunter2-from-env")
    with caplog.at_level(logging.DEBUG):
        sink = open_sink("postgresql+psycopg://bob@127.0.0.1:9/results?connect_timeout_s=1"
                         "&password=${SP_TEST_DB_PASSWORD}")
        sink.close()
    assert "127.0.0.1:9" in caplog.text            # it did log the URL
    assert "hunter2" not in caplog.text
    assert "password=***" in caplog.text


def test_kafka_consumer_secrets_in_a_file_are_refused(tmp_path):
    for name in ("sasl.password", "ssl.key.password", "SASL.PASSWORD", "sasl.oauthbearer.client.secret",
                 "ssl.keystore.password"):
        p = tmp_path / "c.toml"
        p.write_text(f'[kafka.consumer]\n"{name}" = "hunter2"\n')
        with pytest.raises(ConfigError, match="secrets never go in") as e:
            load_config(p, environ={})
        assert "hunter2" not in str(e.value)
    p.write_text('[kafka.consumer]\n"fetch.max.bytes" = "1048576"\n"ssl.key.location" = "/etc/k.pem"\n')
    assert load_config(p, environ={}).kafka.consumer["fetch.max.bytes"] == "1048576"


def test_consumer_secrets_from_the_environment_are_masked_in_the_effective_config():
    cfg = load_config(None, environ={"SIDEPATH_KAFKA_CONSUMER": '{"sasl.oauthbearer.client.secret": "hunter2", '
                                                                 '"fetch.max.bytes": "1"}'})
    assert "hunter2" not in str(masked(cfg)) and "'fetch.max.bytes': '1'" in str(masked(cfg))
