"""Hostile and broken input mixed into a real stream: each gets its error row and dead letter, nothing leaks."""
from __future__ import annotations

import random
import uuid

import pytest

from tests.reliability.hostile import CAP_S, MAX_BYTES, good_av_items, hostile_items, make_hostile_media

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_hostile_input_is_dead_lettered_with_a_reason_and_nothing_forbidden_is_fetched(
        scenario, sizes, seed, rel_media, media_server, canary_server, tmp_path):
    hm = make_hostile_media(tmp_path / "hostile", tmp_path.parent / f"outside-{uuid.uuid4().hex[:8]}", rel_media)
    sc = scenario("hostile input", partitions=2, models=("noop", "tempo"), **{
        "decode.max_bytes": MAX_BYTES, "decode.max_duration_s": CAP_S, "decode.retries": 0,
        "decode.threads": 4, "topic_config": {"max.message.bytes": str(12 * 1024 * 1024)}})
    bad = [it for c in range(sizes.hostile_copies)
           for it in hostile_items(c, rel_media, hm, media_server, canary_server, big=c == 0)]
    good = good_av_items(max(len(bad), sizes.messages - len(bad)), "ok", rel_media, hm, media_server)
    stream = bad + good
    random.Random(seed).shuffle(stream)          # hostile messages anywhere in the stream
    sc.send(stream, **{"message.max.bytes": 12 * 1024 * 1024})
    sup = sc.supervise()
    sc.wait_done(timeout=240)
    sc.stop_all()
    assert [e.code for e in sup.exits] == [0], sup.describe()

    # nothing was fetched from the forbidden address, in any spelling or through any redirect
    assert canary_server.connections == 0 and not canary_server.hits
    # each endless body (one per hostile set) cost at most the cap, plus what sat in socket buffers
    assert 0 < media_server.endless_sent < sizes.hostile_copies * (MAX_BYTES + 16 * 1024 * 1024)
    # the video far over the cap was sampled only up to it (1 fps from 0 to CAP_S s)
    long_rows = [r for r in sc.jsonl() if r["model"] == "noop" and r["postid"].startswith("h-long-")]
    assert long_rows and all(0 < r["results"]["frames"] <= CAP_S + 1 for r in long_rows), long_rows[:1]
    # every dead letter says where it came from and which stage refused it
    letters = sc.letters()
    assert letters and all(d["group"] == sc.group and d["stage"] in ("parse", "fetch", "decode", "infer", "sink")
                           for d in letters)
    # credentials in a URL never reach a row or a dead letter's reason
    assert not [m for m in [r[5] for r in sc.rows()] + [d["error"] for d in letters] if "pw@" in m or ":pw" in m]
    sc.verify(notes=f"{len(bad)} hostile among {len(good)} good (shuffled, seed {seed}); models noop + tempo; "
                    "canary on 127.0.0.2 never contacted; endless body cut at decode.max_bytes")
