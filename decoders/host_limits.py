"""Politeness per media host: a cap on concurrent connections and on requests per second.

sidepath fetches from the same media stores as the live review pipeline; these caps keep a
backfill from crowding it out.  A fetch waits for its host's slot (decode threads wait, never the
poll loop), but never past its deadline.  Waits and server push-backs (429/503) are counted per
host and exported as ``sidepath_fetch_throttled_total{host, reason}``: reason ``cap`` (waited for
our own per-host cap) or ``server`` (the server answered 429 or 503).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sidepath.core.errors import FetchError

__all__ = ["HostLimits", "throttled_counts", "FetchThrottleCollector", "MAX_HOST_LABELS"]

#: hosts named in the metric; further hosts are counted under "other" (bounded label values)
MAX_HOST_LABELS = 50

_counts: Counter[tuple[str, str]] = Counter()
_counts_lock = threading.Lock()


def count_throttled(host: str, reason: str) -> None:
    with _counts_lock:
        named = {h for h, _r in _counts}
        if host not in named and len(named) >= MAX_HOST_LABELS:
            host = "other"
        _counts[(host, reason)] += 1


def throttled_counts() -> dict[tuple[str, str], int]:
    with _counts_lock:
        return dict(_counts)


class _Host:
    def __init__(self, max_connections: int, requests_per_s: float) -> None:
        self.slots = threading.BoundedSemaphore(max_connections) if max_connections > 0 else None
        self.interval_s = 1.0 / requests_per_s if requests_per_s > 0 else 0.0
        self.next_start = 0.0             # monotonic time the next request may start (rate cap)
        self.lock = threading.Lock()


class HostLimits:
    """``slot(host, deadline)``: hold one of the host's connection slots for one request, started no
    sooner than the host's request rate allows.  ``max_connections`` / ``requests_per_s`` of 0: no cap."""

    def __init__(self, *, max_connections: int = 0, requests_per_s: float = 0.0) -> None:
        self.max_connections, self.requests_per_s = int(max_connections), float(requests_per_s)
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.max_connections > 0 or self.requests_per_s > 0

    def _host(self, host: str) -> _Host:
        with self._lock:
            h = self._hosts.get(host)
            if h is None:
                h = self._hosts[host] = _Host(self.max_connections, self.requests_per_s)
            return h

    @contextmanager
    def slot(self, host: str, deadline: float) -> Iterator[None]:
        if not self.active:
            yield
            return
        h = self._host(host)
        waited = False
        if h.slots is not None and not h.slots.acquire(blocking=False):
            waited = True
            if not h.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                count_throttled(host, "cap")
                raise FetchError(f"no connection to {host} free within the fetch deadline "
                                 f"(decode.max_connections_per_host={self.max_connections})", retriable=False)
        try:
            if h.interval_s:
                with h.lock:             # reserve the next start time; sleep outside the lock
                    now = time.monotonic()
                    start = max(now, h.next_start)
                    if start > deadline:
                        count_throttled(host, "cap")
                        raise FetchError(f"the request rate cap for {host} (decode.max_requests_per_s_per_host="
                                         f"{self.requests_per_s:g}) would delay this fetch past its deadline",
                                         retriable=False)
                    h.next_start = start + h.interval_s
                if start > now:
                    waited = True
                    time.sleep(start - now)
            if waited:
                count_throttled(host, "cap")
            yield
        finally:
            if h.slots is not None:
                h.slots.release()


class FetchThrottleCollector:
    """Exports the per-host counts at scrape time (no cost per fetch beyond a counter)."""

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        fam = CounterMetricFamily("sidepath_fetch_throttled", "Media fetches slowed down per host: reason=cap "
                                  "(waited for decode.max_connections_per_host / max_requests_per_s_per_host) "
                                  "or server (the host answered 429 or 503).", labels=["host", "reason"])
        for (host, reason), n in sorted(throttled_counts().items()):
            fam.add_metric([host, reason], n)
        yield fam
