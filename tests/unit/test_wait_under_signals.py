"""The poll loop's wait for completions survives a storm of signals on the main thread.

CPython 3.11's ``SimpleQueue.get(timeout=...)`` on the main thread can wait for ever once a
signal interrupts it: a 6 s loop of such gets under a SIGTERM every millisecond was still
waiting after 30 s, three runs out of three.  A worker's stop (SIGTERM) hung there.  The
engine's wait (``inflight_table._get_within``, used by ``drain`` in ``run`` and ``backfill``)
polls instead.  This runs it in a child process under the same storm and fails if the child
does not finish: a liveness check with a wide margin (3 s of work, 120 s allowed), not a speed one.
"""
from __future__ import annotations

import subprocess
import sys

CHILD = """
import os, queue, signal, threading, time
from sidepath.worker.engine.inflight_table import _get_within

q = queue.SimpleQueue()
signals = []
signal.signal(signal.SIGTERM, lambda s, f: signals.append(s))

def storm():
    for _ in range(2000):
        time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=storm, daemon=True).start()
end, waits = time.monotonic() + 3, 0
while time.monotonic() < end:
    assert _get_within(q, 0.02) is None
    waits += 1
q.put(["done"])
print(len(signals), waits, _get_within(q, 1.0))
"""


def test_the_completion_wait_returns_under_a_storm_of_sigterms():
    try:
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:     # run() has killed the child (SIGKILL: it ignores SIGTERM)
        raise AssertionError("the wait for completions hung under repeated SIGTERMs") from None
    assert out.returncode == 0, out.stderr
    signals, waits, last = out.stdout.split(maxsplit=2)
    assert int(signals) > 100 and int(waits) > 10     # the storm really hit the waits
    assert last.strip() == "['done']"                 # and a queued item still comes out
