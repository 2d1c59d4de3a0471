"""The services around a worker go away and come back: the database, the broker, the media servers."""
from __future__ import annotations

import http.server
import time

import pytest

from tests.fixtures.media import Handler, MediaServer, send
from tests.kafka_util import private_broker
from tests.reliability.mix import mixed_requests
from tests.reliability.scenario import Expect, Item, good

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_database_down_past_the_retry_deadline_exits_1_uncommitted_then_completes(scenario, sizes, rel_media):
    deadline_s = 5.0
    sc = scenario("database outage", partitions=2, **{
        "sinks.retry_deadline_s": deadline_s, "model.options": {"item_ms": 3.0}})
    n = sizes.messages
    sc.send(good(mixed_requests(n // 2, "db", rel_media)))
    sup = sc.supervise()
    sc.wait_rows(n // 4)
    server = sc.db.server
    server.stop("immediate")                       # a crash: no checkpoint, connections cut
    down_at = time.monotonic()
    sc.send(good(mixed_requests(n - n // 2, "db", rel_media, start=n // 2)))    # work arrives meanwhile
    # the worker retries for deadline_s, then gives up: exit 1 (the supervisor restarts it)
    sc.wait_until(lambda: any(e.code == 1 for e in sup.exits), deadline_s * 6, "the worker to exit 1")
    assert "offsets behind these results are not committed" in sup.log_tail(10**7)
    down_s = time.monotonic() - down_at
    server.start()
    up_at = time.monotonic()
    sc.check_commits_behind_results()              # the worker that gave up committed nothing unwritten
    sc.wait_flowing(up_at)
    sc.wait_done()
    sc.stop_all()
    codes = [e.code for e in sup.exits]
    assert codes[-1] == 0 and all(c == 1 for c in codes[:-1]), codes
    sc.verify(restarts=lambda r: 1 <= r <= 4,
              notes=f"PostgreSQL down {down_s:.0f} s (retry deadline {deadline_s:.0f} s), half the input sent "
                    f"meanwhile; exit codes {codes}; recovery = database back to next durable result")


def _answer_and_hang_up(body: bytes) -> Handler:
    """No keep-alive: a pooled connection would outlive the server's close() (a dead server keeps none)."""
    def handler(h: http.server.BaseHTTPRequestHandler, _n: int) -> None:
        send(h, 200, body, "image/jpeg", {"Connection": "close"})
        h.close_connection = True
    return handler


def test_media_servers_slow_flapping_and_gone(scenario, sizes, rel_media, media_server):
    timeout_s, retries, every = 1.5, 2, 10          # one fault among every 10 requests
    sc = scenario("media server faults", partitions=2, **{
        "decode.timeout_s": timeout_s, "decode.retries": retries, "decode.threads": 8})
    n = sizes.messages
    jpeg = rel_media.jpeg
    doomed = MediaServer("127.0.0.1")              # shut down between the two halves of the stream
    kinds = ["slow", "drip", "flap", "hang", "404", "doomed"]
    expect = {
        "slow": Expect(), "drip": Expect(), "flap": Expect(),
        "hang": Expect("error", "fetch", ("timed out",)),
        "404": Expect("error", "fetch", ("404",)),
        "doomed": Expect(),                        # first half: the server is there
        "gone": Expect("error", "fetch", ("cannot connect",)),
    }

    def route(kind: str, path: str) -> str:
        if kind == "slow":
            return media_server.add_slow(path, jpeg, delay_s=timeout_s * 0.5)
        if kind == "drip":
            return media_server.add_drip(path, jpeg, chunk=max(1, len(jpeg) // 4), every_s=timeout_s * 0.3)
        if kind == "flap":
            return media_server.add_sequence(path, [(500, b""), (503, b""), (200, jpeg)])
        if kind == "hang":
            return media_server.add_slow(path, jpeg, delay_s=60)
        if kind == "404":
            return media_server.add(path, b"gone", status=404)
        return doomed.route(path, _answer_and_hang_up(jpeg))

    def requests(lo: int, hi: int, doomed_kind: str) -> list[Item]:
        items: list[Item] = []
        for i, req in enumerate(mixed_requests(hi - lo, "media", rel_media, media_server, start=lo), lo):
            if i % every:
                items += good([req])
                continue
            kind = kinds[(i // every) % len(kinds)]
            url = route(kind, f"/{kind}-{i}.jpg")
            kind = doomed_kind if kind == "doomed" else kind
            items.append(Item(f'{{"postid":"media-{i}","uid":"u","seqid":{i},"image":"{url}"}}'.encode(),
                              f"media-{i}", expect[kind], label=kind))
        return items

    try:
        sc.send(requests(0, n // 2, "doomed"))
        sup = sc.supervise()
        sc.wait_done(timeout=240)
    finally:
        doomed.close()
    gone_at = time.monotonic()
    sc.send(requests(n // 2, n, "gone"))
    sc.wait_done(timeout=240)
    sc.stop_all()
    # retries were made, and bounded: 2 failures then OK; a hanging server gets retries + 1 attempts
    hits = media_server.hits
    flaps = [p for p in hits if p.startswith("/flap-")]
    assert flaps and all(hits[p] == 3 for p in flaps), {p: hits[p] for p in flaps}
    hangs = [p for p in hits if p.startswith("/hang-")]
    assert hangs and all(hits[p] == retries + 1 for p in hangs), {p: hits[p] for p in hangs}
    assert all(hits[p] == 1 for p in hits if p.startswith("/404-")), "a 404 must not be retried"
    assert sup.restarts == 0
    gone = sum(s.item.label == "gone" for s in sc.sent)
    assert gone
    sc.verify(notes=f"1 in {every} requests: {timeout_s * 0.5:.2f} s answer, drip, 500-503-200, "
                    f"hang > timeout {timeout_s:g} s (retries {retries}), 404, or a server shut down "
                    f"mid-stream ({gone} refused after; {time.monotonic() - gone_at:.0f} s to drain the rest)")


@pytest.fixture
def own_broker():
    """A broker of this test alone: it is stopped and restarted mid-stream."""
    with private_broker("sidepath-rel-kafka-") as broker:
        yield broker


def test_broker_stopped_and_restarted_mid_stream(scenario, sizes, rel_media, own_broker):
    sc = scenario("broker restart", partitions=3, bootstrap=own_broker.bootstrap,
                  **{"model.options": {"item_ms": 5.0}})
    n = sizes.messages
    first = list(mixed_requests(n // 2, "bk", rel_media))
    sc.send(good(first))
    sup = sc.supervise()
    sc.wait_rows(n // 6)
    own_broker.stop()                              # controlled shutdown, then nothing listens
    time.sleep(3.0)                                # the worker goes on with what it prefetched
    own_broker.start()
    up_at = time.monotonic()
    sc.send(good(mixed_requests(n - n // 2, "bk", rel_media, start=n // 2)))
    sc.wait_commit_advance(up_at)
    sc.wait_done(timeout=240)
    sc.stop_all()
    assert [e.code for e in sup.exits] == [0], sup.describe()
    sc.verify(notes="broker down ~3 s plus its restart, half the input produced after it; "
                    "recovery = broker up to the next commit")
