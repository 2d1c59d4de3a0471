"""Prometheus metrics, built over a registry the caller gives (never globals).

Names follow DESIGN.md: ``sidepath_`` prefix, base units, ``_total`` counters.
Per-partition series carry (topic, partition, group) only: no per-member
labels, so a rebalance does not multiply series.  Series of revoked
partitions are removed (``forget_partition``).
"""
from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

__all__ = ["Metrics", "build_metrics", "STAGES"]

STAGES = ("parse", "fetch", "decode", "infer", "sink")
_LAT = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_PART = ("topic", "partition", "group")


@dataclass
class Metrics:
    registry: CollectorRegistry
    lag: Gauge
    group_lag: Gauge
    committed: Gauge
    high_watermark: Gauge
    oldest_unfinished_age: Gauge
    last_progress: Gauge
    messages: Counter
    results: Counter
    dead_letters: Counter
    rebalances: Counter
    commit_failures: Counter
    commits: Counter
    stalls: Counter
    stage_seconds: Histogram
    end_to_end_seconds: BatchHistogram
    batch_size: Histogram
    inflight_messages: Gauge
    inflight_bytes: Gauge
    paused: Gauge
    fetched_bytes: Counter
    gpu_memory_used: Gauge
    gpu_memory_budget: Gauge
    last_poll: Gauge
    ready: Gauge
    starting: Gauge
    model_info: Info

    def forget_partition(self, topic: str, partition: int, group: str) -> None:
        labels = (topic, str(partition), group)
        for g in (self.lag, self.committed, self.high_watermark, self.oldest_unfinished_age, self.last_progress):
            try:
                g.remove(*labels)
            except KeyError:
                pass


class BatchHistogram:
    """A histogram without labels that takes its observations a batch at a time.

    For the one observed per message on the poll loop: prometheus_client's Histogram takes two
    locks and walks its buckets in Python for every value, a tenth of the poll loop's time at
    50,000 messages/s.  Here a batch costs one lock, and each value a C bisect.  It exports the
    same series (``_bucket{le}``, ``_count``, ``_sum``).
    """

    def __init__(self, name: str, documentation: str, *, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = sorted(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)         # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()                         # observed on the poll loop, read by scrapes
        registry.register(self)

    def observe_many(self, values: Sequence[float]) -> None:
        slots = [bisect_left(self._bounds, v) for v in values]     # first bound >= v: Prometheus' le
        with self._lock:
            counts = self._counts
            for i in slots:
                counts[i] += 1
            self._sum += sum(values)

    def collect(self) -> Any:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = list(accumulate(counts))
        les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=list(zip(les, cumulative)),
                                    sum_value=total)


class _NvdecCollector:
    """GPU video decoding, read from ``decoders/hwaccel.py`` at scrape time (no cost per video)."""

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from sidepath.decoders.hwaccel import stats

        s = stats()
        videos = CounterMetricFamily(
            "sidepath_nvdec_videos", "Videos decoded with decode.hwaccel on, by how: nvdec | software "
            "(FFmpeg fell back for a stream NVDEC cannot take) | cpu_retry (NVDEC failed, decoded again).",
            labels=["how"])
        videos.add_metric(["nvdec"], s["nvdec_videos"])
        videos.add_metric(["software"], s["ffmpeg_software"])
        videos.add_metric(["cpu_retry"], s["cpu_retries"])
        yield videos
        yield CounterMetricFamily("sidepath_nvdec_device_failures", "CUDA devices that failed to open for "
                                  "decoding.", value=s["device_failures"])
        yield GaugeMetricFamily("sidepath_nvdec_disabled", "1 once this process gave up NVDEC and decodes "
                                "on the CPU.", value=0 if s["given_up"] is None else 1)


def _starting_gauge(r: CollectorRegistry) -> Gauge:
    g = Gauge("sidepath_starting", "1 from process start until the poll loop starts (models loading); "
              "SidepathPollLoopStuck cannot fire meanwhile.", registry=r)
    g.set(1)
    return g


def build_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    r = registry if registry is not None else CollectorRegistry()
    r.register(_NvdecCollector())
    return Metrics(
        registry=r,
        lag=Gauge("sidepath_consumer_lag_messages",
                  "High watermark (LSO under read_committed) minus committed offset, clamped at 0; without a "
                  "committed offset, end minus log start offset (auto_offset_reset earliest) or 0 (latest).",
                  _PART, registry=r),
        group_lag=Gauge("sidepath_consumer_group_lag_messages",
                        "The group's total lag over every partition of the topic (same rule as "
                        "sidepath_consumer_lag_messages); every pod exports the same total.",
                        ("topic", "group"), registry=r),
        committed=Gauge("sidepath_committed_offset", "Last offset committed by the group.", _PART, registry=r),
        high_watermark=Gauge("sidepath_high_watermark_offset", "Partition high watermark.", _PART, registry=r),
        oldest_unfinished_age=Gauge("sidepath_oldest_unfinished_age_seconds",
                                    "Age of the oldest message taken but not yet done.", _PART, registry=r),
        last_progress=Gauge("sidepath_last_progress_timestamp_seconds",
                            "Unix time the partition's committable offset last advanced.", _PART, registry=r),
        messages=Counter("sidepath_messages_total", "Messages finished, by outcome (ok|error).",
                         ["outcome"], registry=r),
        results=Counter("sidepath_results_total", "Results written, by model and outcome.",
                        ["model", "outcome"], registry=r),
        dead_letters=Counter("sidepath_dead_letters_total", "Dead-letter records, by failing stage.",
                             ["stage"], registry=r),
        rebalances=Counter("sidepath_rebalances_total", "Partition assignment changes, by kind.",
                           ["kind"], registry=r),
        commit_failures=Counter("sidepath_commit_failures_total", "Offset commits that failed.", registry=r),
        commits=Counter("sidepath_commits_total", "Offset commits sent.", registry=r),
        stalls=Counter("sidepath_partition_stalls_total", "Partitions seen with lag and no progress.",
                       registry=r),
        stage_seconds=Histogram("sidepath_stage_duration_seconds", "Time spent per stage and message.",
                                ["stage"], buckets=_LAT, registry=r),
        end_to_end_seconds=BatchHistogram("sidepath_message_duration_seconds",
                                          "From poll to durable result, per message.", buckets=_LAT, registry=r),
        batch_size=Histogram("sidepath_batch_size_units", "Units (frames or clips) per model call.",
                             ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r),
        inflight_messages=Gauge("sidepath_inflight_messages", "Messages taken and not yet done.", registry=r),
        inflight_bytes=Gauge("sidepath_inflight_bytes", "Bytes held by unfinished messages.", registry=r),
        paused=Gauge("sidepath_source_paused", "1 while consumption is paused by backpressure.", registry=r),
        fetched_bytes=Counter("sidepath_fetched_bytes_total", "Media bytes fetched.", registry=r),
        gpu_memory_used=Gauge("sidepath_gpu_memory_used_bytes", "GPU memory allocated by this process.",
                              registry=r),
        gpu_memory_budget=Gauge("sidepath_gpu_memory_budget_bytes", "Declared gpu_memory budget.", registry=r),
        last_poll=Gauge("sidepath_last_poll_timestamp_seconds", "Unix time the poll loop last ran.", registry=r),
        ready=Gauge("sidepath_ready", "1 when the model is warmed up and partitions are assigned.", registry=r),
        starting=_starting_gauge(r),
        model_info=Info("sidepath_model", "Loaded model names and versions.", registry=r),
    )
