"""The poll loop's bookkeeping of completions (pure logic: no consumer is touched)."""
from __future__ import annotations

import queue

from prometheus_client import CollectorRegistry

from sidepath.decoders.base import DecodeSpec
from sidepath.models import create_model
from sidepath.sinks.base import SourceRef, utc_now
from sidepath.worker.config import EngineConfig
from sidepath.worker.engine.inflight import Completion, Inflight, error_result, ok_result
from sidepath.worker.engine.poll_loop import Engine
from sidepath.worker.engine.request import parse_request
from sidepath.worker.engine.stages import DecodeStage, Failures
from sidepath.worker.ops.metrics import build_metrics

TP = ("in", 0)


def _engine(models):
    metrics = build_metrics(CollectorRegistry())
    out: queue.SimpleQueue = queue.SimpleQueue()
    failures = Failures(models, out, metrics, "g")
    stage = DecodeStage(models=models, spec=DecodeSpec(frames=False, audio=False), decode=None, threads=0,
                        model_queues={m.name: queue.SimpleQueue() for m in models}, failures=failures,
                        metrics=metrics, add_bytes=lambda inf, n: None)
    engine = Engine(None, topic="in", group="g", models=models, decode_stage=stage, failures=failures,
                    completions=queue.SimpleQueue(), metrics=metrics, limits=EngineConfig())
    engine.tracker.assign(TP)
    return engine


def _take(engine, offset, n_models):
    source = SourceRef(*TP, offset)
    value = b'{"postid": "p%d", "uid": "u", "seqid": "%d", "data": "eA=="}' % (offset, offset)
    inf = Inflight(source, engine.tracker.add(TP, offset), None, value, (), None, remaining=n_models)
    inf.request = parse_request(value, source)
    engine.inflight[source] = inf
    return inf


def test_an_error_from_one_model_leaves_the_other_models_results_alone():
    """A message is done when every model's result is in; one model's error marks the message
    failed without touching the timings that the other model's result is built from."""
    a = create_model("noop", max_batch=8, precision="auto", options={"frames": False})
    b = create_model("noop", max_batch=8, precision="auto", options={"frames": False})
    b.name = "noop-b"
    engine = _engine([a, b])
    inf = _take(engine, 0, 2)
    engine.completions.put([Completion(inf, error_result(inf, a.name, a.version, "infer", "boom"))])
    engine.drain_completions(0.0)
    assert inf.failed and inf.remaining == 1 and engine.stats.done == 0
    late = ok_result(inf, b, {"n": 1}, {**inf.timings_ms, "infer": 1.0}, utc_now())
    assert late.timings_ms == {"infer": 1.0}
    engine.completions.put([Completion(inf, late)])
    engine.drain_completions(0.0)
    assert engine.stats.done == 1 and engine.stats.errors == 1
    assert not engine.inflight and engine.tracker.committable() == {TP: 1}


def test_completions_of_a_revoked_assignment_are_dropped_and_offsets_wait_for_the_rest():
    model = create_model("noop", max_batch=8, precision="auto", options={"frames": False})
    engine = _engine([model])
    infs = [_take(engine, off, 1) for off in range(3)]
    # out of order: 2 and 0 finish, 1 does not -- the committable offset stops at 1
    engine.completions.put([Completion(infs[2], ok_result(infs[2], model, {}, {}, utc_now()))])
    engine.completions.put([Completion(infs[0], ok_result(infs[0], model, {}, {}, utc_now()))])
    engine.drain_completions(0.0)
    assert engine.stats.done == 2 and engine.tracker.committable() == {TP: 1}
    # the partition is revoked and assigned again: the old record's late completion counts for nothing
    engine.rebalance.forget([TP])
    engine.tracker.revoke(TP)
    engine.tracker.assign(TP)
    engine.completions.put([Completion(infs[1], ok_result(infs[1], model, {}, {}, utc_now()))])
    engine.drain_completions(0.0)
    assert engine.stats.done == 2 and engine.tracker.committable() == {}
