"""The intake and completion core that `run` and `backfill` share (pure logic: queues only)."""
from __future__ import annotations

import queue

from prometheus_client import CollectorRegistry

from sidepath.models import create_model
from sidepath.sinks.base import SourceRef, utc_now
from sidepath.worker.engine.inflight import Completion, Inflight, ok_result
from sidepath.worker.engine.inflight_table import InflightTable
from sidepath.worker.engine.stages import Failures
from sidepath.worker.ops.metrics import build_metrics


def _record(offset: int, value: bytes, n_models: int) -> Inflight:
    return Inflight(SourceRef("src", 0, offset), 0, None, value, (), None, remaining=n_models, nbytes=len(value))


def _good(i: int) -> bytes:
    return b'{"postid": "p%d", "uid": "u", "seqid": 1, "data": "eA=="}' % i


def test_admit_dead_letters_what_is_not_a_request_and_hands_on_the_rest_in_order():
    models = [create_model("noop", max_batch=8, precision="auto", options={"frames": False})]
    out: queue.SimpleQueue = queue.SimpleQueue()
    table = InflightTable(queue.SimpleQueue(), Failures(models, out, build_metrics(CollectorRegistry()), "g"))
    records = [_record(0, _good(0), 1), _record(1, b"not json", 1), _record(2, _good(2), 1)]
    ready = table.admit(records)
    assert [r.source.offset for r in ready] == [0, 2] and ready[1].request.postid == "p2"
    assert len(table) == 3 and table.nbytes == sum(len(r.value) for r in records)   # the bad one waits for its row
    [bad] = out.get_nowait()
    assert bad.inflight is records[1] and bad.result.stage == "parse" and bad.letter is not None


def test_drain_finishes_a_message_when_every_model_is_in_and_ignores_dropped_ones():
    a = create_model("noop", max_batch=8, precision="auto", options={"frames": False})
    b = create_model("noop", max_batch=8, precision="auto", options={"frames": False})
    b.name = "noop-b"
    completions: queue.SimpleQueue = queue.SimpleQueue()
    seen: list[tuple[int, str]] = []
    table = InflightTable(completions, Failures([a, b], queue.SimpleQueue(), build_metrics(CollectorRegistry()), "g"),
                          on_result=lambda inf, result: seen.append((inf.source.offset, result.model)))
    first, second = table.admit([_record(0, _good(0), 2), _record(1, _good(1), 2)])
    table.add_bytes(first, 100)
    completions.put([Completion(first, ok_result(first, a, {}, {}, utc_now()))])
    assert table.drain(0.0) == [] and len(table) == 2
    completions.put([Completion(first, ok_result(first, b, {}, {}, utc_now()))])
    completions.put([Completion(second, ok_result(second, a, {}, {}, utc_now()))])
    assert table.drain(0.0) == [first]                   # both lists applied in one drain
    assert seen == [(0, "noop"), (0, "noop-b"), (1, "noop")]
    assert table.nbytes == len(second.value)             # the finished one's message and media bytes are gone
    table.drop(("src", 0))                               # revoked: its late completions count for nothing
    completions.put([Completion(second, ok_result(second, b, {}, {}, utc_now()))])
    assert table.drain(0.0) == [] and len(table) == 0 and table.nbytes == 0


def test_a_failure_is_one_hand_off_an_error_row_per_model_and_one_dead_letter():
    a = create_model("noop", max_batch=8, precision="auto", options={"frames": False})
    b = create_model("noop", max_batch=8, precision="auto", options={"frames": False})
    b.name = "noop-b"
    out: queue.SimpleQueue = queue.SimpleQueue()
    table = InflightTable(queue.SimpleQueue(), Failures([a, b], out, build_metrics(CollectorRegistry()), "g"))
    [bad] = [r for r in [_record(0, b"{}", 2)] if not table.admit([r])]
    rows = out.get_nowait()
    assert out.empty()
    assert [(c.inflight, c.result.model, c.result.stage) for c in rows] == [(bad, "noop", "parse"),
                                                                             (bad, "noop-b", "parse")]
    assert rows[0].letter is not None and rows[0].letter.model == "noop" and rows[1].letter is None
