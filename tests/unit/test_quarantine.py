"""Crash quarantine's record in the commit metadata, and the config keys of issue 24 (pure logic)."""
from __future__ import annotations

import json

import pytest

from sidepath.core.errors import ConfigError
from sidepath.worker.config import load_config
from sidepath.worker.engine.offsets import OffsetTracker
from sidepath.worker.engine.quarantine_record import Record as _Record
from sidepath.worker.engine.quarantine_record import WorkerKilled, parse_record
from sidepath.worker.kafka_config import consumer_config


def test_a_record_survives_the_commit_metadata_round_trip():
    rec = _Record(hi=120, s=130, k={101: 1, 105: 2}, iso=105, st="decode")
    meta = json.dumps({"t": 1.0, "q": rec.to_json()})
    back = parse_record(meta)
    assert (back.hi, back.s, back.k, back.iso, back.st) == (120, 130, {101: 1, 105: 2}, 105, "decode")


@pytest.mark.parametrize("meta", [None, "", "not json", '{"t": 1.5}', '{"q": "x"}', '{"q": {"hi": "x"}}'])
def test_metadata_without_a_record_means_no_suspects(meta):
    rec = parse_record(meta)
    assert rec.hi is None and rec.s is None and rec.iso is None and not rec.k


def test_a_clean_record_writes_nothing():
    assert _Record().to_json() == {}
    assert _Record(k={3: 1}).to_json() == {}        # counts only matter inside a suspect range


def test_the_dead_letter_reason_names_the_stage_and_the_count():
    exc = WorkerKilled("decode", 2)
    assert exc.stage == "decode"
    assert "the worker was killed while processing this message 2 times (signal or out of memory)" in str(exc)


def test_safe_offset_is_the_lowest_pending_else_past_everything_taken():
    t = OffsetTracker()
    tp = ("t", 0)
    t.assign(tp, committed=10)
    assert t.safe_offset(tp) == 10
    e = t.add(tp, 10)
    t.add(tp, 11)
    assert t.safe_offset(tp) == 10
    t.done(tp, 10, e)
    assert t.safe_offset(tp) == 11
    t.done(tp, 11, e)
    assert t.safe_offset(tp) == 12
    assert t.safe_offset(("t", 9)) is None


def test_group_instance_id_sets_static_membership():
    cfg = load_config(None, environ={"SIDEPATH_KAFKA_GROUP_INSTANCE_ID": "sidepath-7d9f-abc"})
    assert consumer_config(cfg)["group.instance.id"] == "sidepath-7d9f-abc"
    assert "group.instance.id" not in consumer_config(load_config(None, environ={}))


def test_max_crashes_must_not_be_negative():
    assert load_config(None, environ={}).engine.max_crashes == 2
    assert load_config(None, environ={}, overrides={"engine.max_crashes": 0}).engine.max_crashes == 0
    with pytest.raises(ConfigError, match="engine.max_crashes"):
        load_config(None, environ={}, overrides={"engine.max_crashes": -1})
