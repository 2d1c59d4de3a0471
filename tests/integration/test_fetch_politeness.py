"""Polite media fetching against real HTTP servers on loopback: a cap on concurrent connections and
requests per second per host, Retry-After honoured on 429/503 within the fetch deadline, and a
per-host count of throttled fetches."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sidepath.core.errors import FetchError
from sidepath.decoders import Fetcher
from sidepath.decoders.host_limits import FetchThrottleCollector, throttled_counts


class CountingServer:
    """Counts open TCP connections (keep-alive HTTP/1.1) and records when each request arrived.
    ``answer(n)`` gives (status, headers, body) for the n-th request (0-based)."""

    def __init__(self, answer: Callable[[int], tuple[int, dict[str, str], bytes]], delay_s: float = 0.0) -> None:
        self.open = self.max_open = 0
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with owner.lock:
                    owner.open += 1
                    owner.max_open = max(owner.max_open, owner.open)

            def finish(self) -> None:
                with owner.lock:
                    owner.open -= 1
                super().finish()

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                with owner.lock:
                    n = len(owner.arrivals)
                    owner.arrivals.append(time.monotonic())
                if delay_s:
                    time.sleep(delay_s)
                status, headers, body = answer(n)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/media.bin"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers: list[CountingServer] = []

    def start(answer, delay_s: float = 0.0) -> CountingServer:
        servers.append(CountingServer(answer, delay_s))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ok(_n: int) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"x" * 1000


def test_concurrent_connections_per_host_never_exceed_the_cap(serve):
    server = serve(ok, delay_s=0.2)
    fetcher = Fetcher(allow_hosts=["127.0.0.1"], timeout_s=5, retries=0, pool_size=8, max_connections_per_host=2)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _i: fetcher.fetch(server.url), range(16)))
    assert all(g.size == 1000 for g in got)
    assert server.max_open == 2            # the cap, and it was reached: the fetches did run side by side
    assert throttled_counts().get(("127.0.0.1", "cap"), 0) > 0


def test_without_the_cap_the_same_fetches_open_more_connections(serve):
    server = serve(ok, delay_s=0.2)
    fetcher = Fetcher(allow_hosts=["127.0.0.1"], timeout_s=5, retries=0, pool_size=8, max_connections_per_host=0)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _i: fetcher.fetch(server.url), range(16)))
    assert server.max_open > 2             # the check above can fail


def test_requests_per_second_per_host_are_spaced(serve):
    server = serve(ok)
    fetcher = Fetcher(allow_hosts=["127.0.0.1"], timeout_s=5, retries=0, pool_size=4,
                      max_requests_per_s_per_host=10)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _i: fetcher.fetch(server.url), range(8)))
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:])]
    assert len(server.arrivals) == 8 and min(gaps) >= 0.09, gaps


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(serve, status):
    server = serve(lambda n: (status, {"Retry-After": "1"}, b"slow down") if n == 0 else ok(n))
    before = throttled_counts().get(("127.0.0.1", "server"), 0)
    fetcher = Fetcher(allow_hosts=["127.0.0.1"], timeout_s=5, retries=2, backoff_s=0.01)
    assert fetcher.fetch(server.url).size == 1000
    assert len(server.arrivals) == 2
    assert server.arrivals[1] - server.arrivals[0] >= 0.9     # not before the server said
    assert throttled_counts()[("127.0.0.1", "server")] == before + 1
    families = {f.name: f for f in FetchThrottleCollector().collect()}
    samples = {tuple(s.labels.values()): s.value for s in families["sidepath_fetch_throttled"].samples
               if s.name.endswith("_total")}
    assert samples[("127.0.0.1", "server")] >= 1


def test_retry_after_past_the_deadline_is_not_waited_for(serve):
    server = serve(lambda n: (429, {"Retry-After": "120"}, b"come back later"))
    fetcher = Fetcher(allow_hosts=["127.0.0.1"], timeout_s=1, retries=3, backoff_s=0.01, deadline_s=3)
    with pytest.raises(FetchError, match=r"HTTP 429 .* asks to retry after 120 s, past the fetch deadline"):
        fetcher.fetch(server.url)
    assert len(server.arrivals) == 1          # given up at once, not retried
