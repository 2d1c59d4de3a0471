"""Memory under a backlog: a worker's peak RSS is set by its caps, not by how far behind it is.

The same worker drains a small and a ten times larger backlog of the same
messages in one run.  If anything held messages beyond the caps (the client's
prefetch, the in-flight table, the queues between stages), the large run
would need about ``(large - small) * message size`` more memory; bounded, it
needs at most what the caps allow on top of the small run's peak.
"""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.reliability.mix import noisy_png
from tests.reliability.scenario import Item

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

MAX_INFLIGHT = 200
MAX_INFLIGHT_BYTES = 32 * 1024 * 1024
# librdkafka's local queue (queued.max.messages.kbytes) plus one fetch response (fetch.max.bytes),
# both set in worker/kafka_config.py
PREFETCH_BYTES = 8 * 1024 * 1024 + 8 * 1024 * 1024
SLACK_BYTES = 24 * 1024 * 1024        # allocator and interpreter noise between two runs of one process kind


def _peak_rss(pid: int) -> int:
    """VmHWM: the process's peak resident set, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def _drain(scenario, name: str, n: int, png_b64: str, report: bool) -> tuple[int, int, object]:
    sc = scenario(name, partitions=2, **{
        "engine.max_inflight_messages": MAX_INFLIGHT, "engine.max_inflight_bytes": MAX_INFLIGHT_BYTES,
        "model.max_batch": 64, "sinks.batch_size": 500, "engine.commit_interval_s": 1.0})
    if not report:
        sc.report = None
    msg = f'{{"postid":"{name[:3]}-%d","uid":"u","seqid":%d,"image":"{png_b64}"}}'
    for lo in range(0, n, 10_000):                # in chunks: a soak's backlog is gigabytes
        sc.send([Item((msg % (i, i)).encode(), f"{name[:3]}-{i}") for i in range(lo, min(n, lo + 10_000))])
    sup = sc.supervise()
    sc.wait_done(timeout=600)
    peak = _peak_rss(sup.pid)                     # still running: read before it exits
    sc.stop_all()
    return peak, len(msg % (0, 0)), sc


def test_peak_memory_does_not_grow_with_the_backlog(scenario, sizes):
    png = noisy_png((48, 40), seed=7)             # ~5.8 kB that does not compress: ~7.8 kB messages
    png_b64 = base64.b64encode(png).decode()
    decoded = 48 * 40 * 3
    small, _, small_sc = _drain(scenario, "mem-small", sizes.backlog_small, png_b64, report=False)
    small_sc.verify()
    large, msg_bytes, sc = _drain(scenario, "memory under a backlog", sizes.backlog_large, png_b64, report=True)
    allowance = MAX_INFLIGHT * (msg_bytes + decoded) + PREFETCH_BYTES + SLACK_BYTES
    unbounded = (sizes.backlog_large - sizes.backlog_small) * msg_bytes
    assert allowance < unbounded / 2, "the backlog is too small to tell bounded from unbounded"
    mib = 1024 * 1024
    assert large <= small + allowance, (
        f"peak RSS {large / mib:.0f} MiB with a backlog of {sizes.backlog_large}, {small / mib:.0f} MiB with "
        f"{sizes.backlog_small}: more than the caps allow ({allowance / mib:.0f} MiB)")
    sc.verify(notes=f"peak RSS {large / mib:.0f} MiB vs {small / mib:.0f} MiB for {sizes.backlog_small:,} "
                    f"(ratio {large / small:.2f}); caps allow +{allowance / mib:.0f} MiB, holding the backlog "
                    f"would take +{unbounded / mib:.0f} MiB; {msg_bytes:,}-byte messages")
