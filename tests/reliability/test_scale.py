"""Scaling out and back in mid-stream: the group rebalances, every input is still done exactly once."""
from __future__ import annotations

import time

import pytest

from tests.reliability.mix import mixed_requests
from tests.reliability.scenario import good

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_scale_from_1_to_3_workers_and_back_to_1_mid_stream(scenario, sizes, rel_media, media_server):
    # a model with a real cost per item, so that the stream outlasts the rebalances
    sc = scenario("scale 1-3-1", partitions=6, **{
        "model.options": {"item_ms": 25.0}, "model.max_batch": 8, "engine.max_inflight_messages": 30})
    n = sizes.messages
    sc.send(good(mixed_requests(n, "scale", rel_media, media_server)))
    first = sc.supervise(slot=0)
    sc.wait_rows(n // 10)
    extra = [sc.supervise(slot=1), sc.supervise(slot=2)]            # scale out to 3
    # cooperative rebalancing moves partitions in two rounds: wait until both newcomers wrote results
    newcomer_files = [sc.tmp / "results-1.jsonl", sc.tmp / "results-2.jsonl"]
    sc.wait_until(lambda: all(p.exists() and p.stat().st_size > 0 for p in newcomer_files), 120,
                  "the new workers to write results")
    left = sc.expected_rows() - (sc.row_count() or 0)
    assert left > 0, "the stream ended before the scale-in; give the model more work"
    scaled_in_at = time.monotonic()
    for sup in extra:                                               # scale back in to 1
        sup.signal_stop()
    codes = [sup.stop(timeout=60) for sup in extra]
    assert codes == [0, 0], [s.log_tail() for s in extra]
    sc.wait_flowing(scaled_in_at)
    sc.wait_done()
    sc.stop_all()
    assert [e.code for e in first.exits] == [0]
    assert '"message": "revoked' in first.log_tail(10**7)              # partitions moved to the newcomers
    sc.verify(notes=f"6 partitions, cooperative rebalances; all 3 workers wrote results; {left} of {n} "
                    "left at the scale-in; recovery = scale-in to next durable result")
