"""Worker processes killed hard or stopped politely mid-stream: nothing is lost, nothing is committed early."""
from __future__ import annotations

import random
import re
import signal
import time

import pytest

from tests.reliability.mix import mixed_requests
from tests.reliability.scenario import good

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_kill_9_at_random_moments_then_restart_loses_nothing(scenario, sizes, seed, rel_media, media_server):
    sc = scenario("kill -9", partitions=3, **{"model.options": {"item_ms": 4.0}})
    n = sizes.messages
    sc.send(good(mixed_requests(n, "k9", rel_media, media_server)))
    sup = sc.supervise(max_restarts=sizes.kills + 1)   # the kills come faster than a worker counts as stable
    rng = random.Random(seed)
    for k in range(sizes.kills):
        # a random moment inside the k-th stretch of the stream, plus a random delay
        sc.wait_rows(int(n * (k + rng.uniform(0.2, 0.9)) / (sizes.kills + 1)))
        time.sleep(rng.uniform(0.0, 0.5))
        sup.wait_running()
        killed_at = sup.kill(signal.SIGKILL)
        sc.check_commits_behind_results()       # the dead worker committed nothing it had not written
        sc.wait_flowing(killed_at)
    sc.wait_done()
    sc.stop_all()
    assert [e.code for e in sup.exits] == [-signal.SIGKILL] * sizes.kills + [0]
    sc.verify(restarts=sizes.kills, notes=f"{sizes.kills} kills at random moments (seed {seed}); "
                                          "recovery = kill to next durable result")


def test_sigterm_with_a_full_pipeline_exits_0_and_the_restart_leaves_no_gap(scenario, sizes, rel_media):
    grace_s = 3.0
    # a slow model and a deep pipeline: hundreds of messages in flight when the signal comes
    sc = scenario("SIGTERM, full pipeline", partitions=2, **{
        "model.options": {"batch_ms": 150.0}, "model.max_batch": 8, "engine.max_inflight_messages": 400,
        "decode.threads": 2, "engine.shutdown_grace_s": grace_s})
    n = sizes.messages
    sc.send(good(mixed_requests(n, "term", rel_media)))
    sup = sc.supervise()
    sc.wait_rows(n // 10)
    sig_at = time.monotonic()
    code = sup.stop(timeout=grace_s + 30)        # a hang past the grace period (+ close) fails here
    stop_s = time.monotonic() - sig_at
    assert code == 0, sup.log_tail()
    sc.check_commits_behind_results()
    done_before = sc.row_count() or 0
    unfinished = re.search(r"stopping with (\d+) unfinished", sup.log_tail(10**7))
    assert unfinished and done_before < n, "the pipeline was not full when SIGTERM came"

    again = sc.supervise(slot=1)                 # the restart: a fresh process, same group
    sc.wait_flowing(sig_at)
    sc.wait_done()
    sc.stop_all()
    assert [e.code for e in again.exits] == [0]
    # a clean stop leaves no crash suspects: the restart ran at full speed, nothing one at a time
    assert "one at a time" not in again.log_tail(10**7) and "'isolated': 0" in again.log_tail(10**7)
    sc.verify(notes=f"SIGTERM with up to 400 in flight; {unfinished.group(1)} left uncommitted at the end of "
                    f"the {grace_s:.0f} s grace, exit 0 after {stop_s:.1f} s; recovery = signal to the restart's "
                    "first result")
