"""Messages that kill the worker process: crash quarantine, static membership (issue 24).

A test-only model (``tests/killer_model.py``) SIGKILLs its own process when it sees an
image 13 px wide.  Real broker, real PostgreSQL, real worker processes under the
reliability suite's supervisor, which restarts them like Kubernetes does.
"""
from __future__ import annotations

import json
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.engine.quarantine import parse_record
from tests.fixtures.media import make_image
from tests.reliability.scenario import OK, Expect, Item

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

KILLER = "tests.killer_model:KillerModel"
MAX_CRASHES = 2
SESSION_MS = 30000      # above a worker's restart time on a busy 2-core machine (~15 s)
#: the first restart delay of the killer scenarios (it doubles per consecutive crash, as Kubernetes'
#: back-off does): shorter than the suite's 0.5 s, since these scenarios restart a worker 9-12 times
KILLER_BACKOFF_S = 0.1
KILLED = Expect("error", "infer", ("killed while processing this message 2 times", "signal or out of memory"))


def _stream(n: int, killers: set[int], png_b64: str, tag: str) -> list[Item]:
    import base64

    kill_b64 = base64.b64encode(make_image("png", size=(13, 10))).decode()
    out = []
    for i in range(n):
        killer = i in killers
        req = {"postid": f"{tag}-{i}", "uid": "u", "seqid": i, "image": kill_b64 if killer else png_b64}
        out.append(Item(json.dumps(req).encode(), req["postid"], KILLED if killer else OK,
                        label=f"killer {tag}-{i}" if killer else ""))
    return out


def _records(sc: Any) -> dict[int, tuple[int, Any]]:
    """The committed offset and the quarantine record (from its metadata) of each partition."""
    c = Consumer({**librdkafka_logging(), "bootstrap.servers": sc.bootstrap, "group.id": sc.group,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(sc.topic, p) for p in range(sc.partitions)], timeout=10)
    finally:
        c.close()
    return {tp.partition: (tp.offset, parse_record(tp.metadata)) for tp in tps}


def _killer_scenario(scenario: Any, name: str, **extra: Any) -> Any:
    # the suite's 6 s session: a dead dynamic member holds up the group's rebalance that long
    sc = scenario(name, partitions=4, models=("killer", "noop"), **{
        "model.name": KILLER, "engine.max_crashes": MAX_CRASHES, "engine.max_inflight_messages": 64, **extra})
    sc.report = None          # figures go into docs/reliability.md by hand
    return sc


def _check_crashes(sc: Any, killers: int) -> int:
    kills = sum(1 for sup in sc.supervisors for e in sup.exits if e.code == -signal.SIGKILL)
    assert 1 <= kills <= killers * (MAX_CRASHES + 1), f"{kills} crashes for {killers} killers"
    letters = [d for d in sc.letters() if "killed while processing" in d["error"]]
    # a rebalance between a dead letter and its commit may write one twice (at least once, like results)
    assert len({(d["source"]["partition"], d["source"]["offset"]) for d in letters}) == killers, letters
    assert all(d["stage"] == "infer" for d in letters), letters
    return kills


def _settle(sc: Any, timeout: float = 120) -> None:
    """Wait until every worker's current process has joined the group (its SIGTERM handler is
    installed by then): a stop that lands in a restart's start-up would end it with -15."""
    def joined() -> bool:
        for sup in sc.supervisors:
            text = sup.log_path.read_text(errors="replace")
            if not sup.running() or text.rfind('"message": "assigned ') < text.rfind("starting with config"):
                return False
        return True

    sc.wait_until(joined, timeout, "every worker to have joined the group")


def _clean(sc: Any) -> None:
    """After a clean stop no partition has suspects: nothing marked in flight at or past the
    committed offset, no suspect range left (the next start runs at full speed)."""
    recs = _records(sc)
    dirty = {p: (c, r) for p, (c, r) in recs.items()
             if max(r.hi or -1, r.s or -1) > c or (r.iso is not None and r.iso >= c)}
    assert not dirty, f"suspects left after a clean stop: {dirty}"


@pytest.mark.slow           # about 1.5 min on the 2-core test machine: 6 worker restarts of ~12 s each
def test_killer_messages_are_quarantined_and_the_stream_goes_on(scenario, rel_media):
    """1,000 messages over 4 partitions, 2 of them (on two partitions) kill the worker: each killer
    gets an error row for both models and a dead letter with the reason; everything else exactly one
    result."""
    sc = _killer_scenario(scenario, "killers, one worker")
    killers = {301, 702}
    sc.send(_stream(1000, killers, rel_media.png_b64, "k1"))
    sc.supervise(max_restarts=12, backoff_s=KILLER_BACKOFF_S, **{"kafka.group_instance_id": "w0"})
    sc.wait_done(timeout=240)
    _settle(sc)
    sc.stop_all()
    kills = _check_crashes(sc, len(killers))
    sc.verify(restarts=lambda n: n == kills)
    _clean(sc)
    log = sc.supervisors[0].log_tail(10**8)
    assert "one at a time" in log


@pytest.mark.slow
def test_two_workers_quarantine_follows_the_partition(scenario, rel_media):
    """Two workers in the group and a killer on every partition: each worker dies on its own
    killers; the quarantine record travels with the partition across the rebalances."""
    sc = _killer_scenario(scenario, "killers, two workers")
    killers = {401, 802, 1203, 1604}       # i % 4: one per partition, so both workers meet killers
    sc.send(_stream(2000, killers, rel_media.png_b64, "k2"))
    sc.supervise(0, max_restarts=12, backoff_s=KILLER_BACKOFF_S)
    sc.supervise(1, max_restarts=12, backoff_s=KILLER_BACKOFF_S)
    sc.wait_done(timeout=300)
    _settle(sc)
    sc.stop_all()
    kills = _check_crashes(sc, len(killers))
    sc.verify(restarts=lambda n: n == kills)
    _clean(sc)
    assert all(sup.restarts >= 1 for sup in sc.supervisors), [s.describe() for s in sc.supervisors]


def _first_row_after(sc: Any, slot: int, since_lines: int, timeout: float = 120) -> float:
    path = sc.tmp / f"results-{slot}.jsonl"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with open(path, "rb") as fh:
            if sum(1 for _ in fh) > since_lines:
                return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"no result from slot {slot} within {timeout} s")


def _lines(sc: Any, slot: int) -> int:
    path = sc.tmp / f"results-{slot}.jsonl"
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def _restart_scenario(scenario: Any, rel_media: Any, *, static: bool) -> Any:
    name = f"restart, {'static' if static else 'dynamic'} membership"
    sc = scenario(name, partitions=4, **{"model.options": {"item_ms": 20.0}, "model.max_batch": 4,
                                        "kafka.session_timeout_ms": SESSION_MS, "engine.max_inflight_messages": 32})
    sc.report = None
    sc.send(_stream(3000, set(), rel_media.png_b64, "r"))
    return sc


def _restart_time(sc: Any, *, static: bool) -> tuple[float, int]:
    """Kill worker 0 of two; seconds from the kill to its restart's first result, and how many
    assignment changes worker 1 saw meanwhile."""
    ids = ({"kafka.group_instance_id": "w0"}, {"kafka.group_instance_id": "w1"}) if static else ({}, {})
    a = sc.supervise(0, **ids[0])
    b = sc.supervise(1, **ids[1])
    sc.wait_until(lambda: _lines(sc, 0) > 50 and _lines(sc, 1) > 50, 120, "both workers busy")
    _settle(sc)
    time.sleep(2.0)      # let the group settle (a cooperative rebalance has two rounds)
    other_log = sc.tmp / "worker-1.log"
    before = len(re.findall(r"(assigned|revoked) ", other_log.read_text()))
    base = _lines(sc, 0)
    killed_at = a.kill(signal.SIGKILL)
    took = _first_row_after(sc, 0, base, timeout=SESSION_MS / 1000 + 90) - killed_at
    time.sleep(1.0)
    changes = len(re.findall(r"(assigned|revoked) ", other_log.read_text())) - before
    a.stop()
    b.stop()
    return took, changes


@pytest.mark.slow
def test_static_membership_restart_resumes_without_a_rebalance(scenario, rel_media):
    """The static and the dynamic group run side by side (own topics, own groups): the dynamic one
    is the comparison, and waits out its 30 s session."""
    static_sc = _restart_scenario(scenario, rel_media, static=True)
    dynamic_sc = _restart_scenario(scenario, rel_media, static=False)
    with ThreadPoolExecutor(2) as pool:
        static_run = pool.submit(_restart_time, static_sc, static=True)
        dynamic_run = pool.submit(_restart_time, dynamic_sc, static=False)
        took_static, changes_static = static_run.result()
        took_dynamic, changes_dynamic = dynamic_run.result()
    print(f"\nfirst result after a kill -9 and restart: static {took_static:.1f} s "
          f"(other member: {changes_static} assignment changes), dynamic {took_dynamic:.1f} s "
          f"(other member: {changes_dynamic} assignment changes)")
    # the control: without static membership the other member does see the group change
    assert changes_dynamic >= 1, f"dynamic membership: the other member saw no assignment change ({took_dynamic:.0f} s)"
    assert changes_static == 0, (f"the other member saw {changes_static} assignment changes although the restarted "
                                 f"member is static (did the restart take {took_static:.0f} s, longer than the "
                                 f"{SESSION_MS / 1000:.0f} s session timeout?)")
