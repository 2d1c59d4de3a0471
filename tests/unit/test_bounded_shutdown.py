"""A stopping worker never waits for ever on a librdkafka call that hangs (worker/engine/consumer_close.py)."""
from __future__ import annotations

import logging
import threading
import time

from sidepath.worker.engine.consumer_close import bounded


def test_a_hanging_final_commit_is_given_up_after_its_bound(caplog):
    release = threading.Event()
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
        bounded(lambda: release.wait(30), 0.2, "the final commit")
    waited = time.monotonic() - t0
    release.set()
    assert waited < 29                      # it did not wait for the hung call (the bound is 0.2 s)
    assert "the final commit did not finish" in caplog.text


def test_a_call_that_finishes_is_waited_for_and_says_nothing(caplog):
    done = []
    with caplog.at_level(logging.WARNING):
        bounded(lambda: (time.sleep(0.05), done.append(1)), 5, "the final commit")
    assert done == [1] and caplog.text == ""
