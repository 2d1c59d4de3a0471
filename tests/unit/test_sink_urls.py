"""Opening sinks from URLs: schemes, plug-ins, ${VAR} secrets, options and their errors."""
from __future__ import annotations

import logging
import textwrap

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from sidepath.core.errors import ConfigError
from sidepath.sinks import DeadLetterSink, Sink, open_dead_letter_sink, open_sink, sink_schemes
from sidepath.sinks.kafka import KafkaSink, producer_config_of_url
from sidepath.sinks.sql_schema import results_table
from sidepath.sinks.sql_upsert import upsert_statement
from sidepath.sinks.url import parse_bytes, scheme_of


def test_unknown_scheme_names_the_choices():
    with pytest.raises(ConfigError) as info:
        open_sink("sqll:///x.db")
    assert "unknown sink scheme 'sqll' in 'sqll:///x.db'; use one of kafka, file, sqlite, postgresql, mysql" \
        in str(info.value)


def test_unknown_dead_letter_scheme_names_its_choices():
    with pytest.raises(ConfigError) as info:
        open_dead_letter_sink("sqlite:///dlq.db")
    assert "unknown dead-letter sink scheme 'sqlite'" in str(info.value)
    assert "use one of kafka, file" in str(info.value)
    assert info.value.key == "sinks.dead_letter"


def test_a_url_without_scheme_is_refused():
    with pytest.raises(ConfigError, match="no scheme in '/var/results.jsonl'"):
        open_sink("/var/results.jsonl")


@pytest.mark.parametrize(("url", "scheme"), [
    ("postgresql+psycopg://u@h/db", "postgresql"), ("SQLite:///x.db", "sqlite"),
    ("kafka://h:1/t", "kafka"), ("file:///x", "file"), ("x.db", ""),
])
def test_scheme_of(url, scheme):
    assert scheme_of(url) == scheme


@pytest.mark.parametrize(("text", "n"), [("4096", 4096), ("64MiB", 64 << 20), ("10MB", 10_000_000),
                                         ("1.5k", 1500), ("2 GiB", 2 << 30)])
def test_sizes(text, n):
    assert parse_bytes(text) == n


def test_a_sink_plugged_in_through_an_entry_point_is_opened_by_its_scheme(tmp_path, monkeypatch):
    """A real distribution on sys.path declaring the entry point, as a user's package would."""
    (tmp_path / "memo_sink.py").write_text(textwrap.dedent("""
        class MemoSink:
            def __init__(self, url):
                self.url, self.rows = url, []
            def write(self, results):
                self.rows.extend(results)
                return []
            def close(self):
                pass
    """))
    dist = tmp_path / "memo_sink-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: memo-sink\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sidepath.sinks]\nmemo = memo_sink:MemoSink\n"
                                           "gone = no_such_module_here:Sink\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MEMO_TOKEN", "s3cret")
    assert "memo" in sink_schemes()
    sink = open_sink("memo://bucket/${MEMO_TOKEN}")
    assert type(sink).__name__ == "MemoSink"
    assert sink.url == "memo://bucket/s3cret"
    assert isinstance(sink, Sink)
    with pytest.raises(ConfigError, match="the 'gone' sink could not be loaded"):
        open_sink("gone://x")


def test_built_in_sinks_meet_the_contract(tmp_path):
    sinks = [open_sink(f"file://{tmp_path}/r.jsonl"), open_sink(f"sqlite:///{tmp_path}/r.db")]
    dlq = open_dead_letter_sink(f"file://{tmp_path}/dlq.jsonl")
    try:
        assert all(isinstance(s, Sink) for s in sinks)
        assert isinstance(dlq, DeadLetterSink)
    finally:
        for s in sinks:
            s.close()
        dlq.close()


def test_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("NO_SUCH_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as info:
        open_sink("postgresql+psycopg://app:${NO_SUCH_PASSWORD}@127.0.0.1:1/db")
    assert "environment variable NO_SUCH_PASSWORD is not set" in str(info.value)


def test_password_with_url_characters_reaches_the_driver_intact_and_is_never_shown(monkeypatch, caplog):
    raw = "p@ss/w:rd%?#&="
    monkeypatch.setenv("SIDEPATH_TEST_DB_PW", raw)
    caplog.set_level(logging.DEBUG)
    # port 1 on loopback: nothing listens, the sink opens and defers the table check to the first write
    sink = open_sink("postgresql+psycopg://app:${SIDEPATH_TEST_DB_PW}@127.0.0.1:1/results?connect_timeout_s=1")
    try:
        assert sink.engine.url.password == raw
        assert sink.engine.url.username == "app" and sink.engine.url.database == "results"
        assert "***" in sink.url and raw not in sink.url
        assert raw not in caplog.text and "p%40ss" not in caplog.text
        assert "not reachable yet" in caplog.text
    finally:
        sink.close()


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite:///x.db?on_confict=ignore", "unknown option 'on_confict'; did you mean on_conflict?"),
    ("sqlite:///x.db?on_conflict=skip", "option on_conflict='skip' is not valid; use one of update, ignore"),
    ("sqlite:///x.db?table=results;drop", "table name 'results;drop' is not a plain identifier"),
    ("sqlite://", "an in-memory SQLite database is not durable"),
    ("postgresql+psycopg2://u@127.0.0.1/db", "database driver psycopg2 is not installed"),
])
def test_bad_sql_urls_say_what_to_fix(url, message):
    with pytest.raises(ConfigError) as info:
        open_sink(url)
    assert message in str(info.value)


def test_mysql_upsert_updates_every_value_column_and_ignore_is_a_no_op_update():
    t = results_table("r", sa.MetaData())
    update = str(upsert_statement(t, "mysql", "update").compile(dialect=mysql.dialect()))
    ignore = str(upsert_statement(t, "mysql", "ignore").compile(dialect=mysql.dialect()))
    assert "ON DUPLICATE KEY UPDATE" in update and "msg = VALUES(msg)" in update
    assert "postid = VALUES" not in update                    # keys are never rewritten
    assert ignore.endswith("ON DUPLICATE KEY UPDATE model = r.model")
    assert "IGNORE" not in ignore.split("ON DUPLICATE")[0]    # INSERT IGNORE would swallow bad values


def test_kafka_url_gives_an_idempotent_producer_config(monkeypatch):
    cfg, topic, timeout_s = producer_config_of_url(
        "kafka://user:p%40ss@127.0.0.1:9092,127.0.0.2:9093/results.v1?timeout_s=5&compression.type=zstd"
        "&security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512", key="sinks.urls")
    assert topic == "results.v1" and timeout_s == 5
    assert cfg["bootstrap.servers"] == "127.0.0.1:9092,127.0.0.2:9093"
    assert (cfg["acks"], cfg["enable.idempotence"], cfg["message.timeout.ms"]) == ("all", "true", 300_000)
    assert (cfg["compression.type"], cfg["sasl.username"], cfg["sasl.password"]) == ("zstd", "user", "p@ss")


@pytest.mark.parametrize(("url", "message"), [
    ("kafka://127.0.0.1:9092", "topic '' is not a valid Kafka topic name"),
    ("kafka://127.0.0.1/results", "use kafka://host:port[,host:port]/topic"),
    ("kafka://127.0.0.1:9092/results?acks=1", "acks=1 is not allowed"),
    ("kafka://127.0.0.1:9092/results?enable.idempotence=false", "enable.idempotence=false is not allowed"),
    ("kafka://u:pw@127.0.0.1:9092/results", "credentials in a kafka URL need security.protocol=SASL_SSL"),
    ("kafka://127.0.0.1:9092/results?timeout_s=soon", "option timeout_s='soon' must be a number"),
    ("kafka://127.0.0.1:9092/results?lingr.ms=5", "librdkafka refused the settings (No such configuration "
                                                   "property: \"lingr.ms\")"),
])
def test_bad_kafka_urls_say_what_to_fix(url, message):
    with pytest.raises(ConfigError) as info:
        KafkaSink(url)
    assert message in str(info.value)
    assert ":pw@" not in str(info.value)
