"""One HTTP port: /metrics (Prometheus), /api/ping (liveness), /api/ready (readiness).

The port is reachable by whoever shares the pod's network, so it bounds what a client can
hold (docs/security.md): each connection reads its request within ``read_timeout_s``, and
at most ``max_connections`` are open at once.  At the cap, a new connection closes the
oldest one still sending its request (an idle or half-sent one), so probes keep being
answered while a slow client holds the port; when every slot is busy answering, the new
connection is closed at once (a probe tries again).  It binds ``metrics.host``: loopback by
default, the pod IP in the chart.
"""
from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HealthServer"]

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64     # listen backlog: a burst of probes and scrapes is not dropped

    def __init__(self, address: tuple[str, int], handler: Any, *, max_connections: int) -> None:
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._open = 0
        self._reading: dict[Any, float] = {}      # connection -> accepted at, until its request is in
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if self._open >= self.max_connections:
                victim = min(self._reading, key=self._reading.__getitem__, default=None)
                if victim is None:               # every slot is answering a request
                    log.debug("http: %d connections open; closing one from %s", self._open, client_address[0])
                    self.shutdown_request(request)
                    return
                del self._reading[victim]
                log.debug("http: %d connections open; closing the oldest one still sending its request",
                          self._open)
                try:
                    victim.shutdown(socket.SHUT_RDWR)    # its thread's read returns; the thread ends
                except OSError:
                    pass
            self._open += 1
            self._reading[request] = time.monotonic()
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open -= 1
                self._reading.pop(request, None)

    def request_read(self, request: Any) -> None:
        """The request is in: the connection is answering now, not a candidate to close."""
        with self._lock:
            self._reading.pop(request, None)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """One log line, not socketserver's traceback on stderr: a scraper or probe that hangs up
        mid-answer (a timeout) is the client's business."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.debug("http: request from %s ended early: %s", client_address[0], exc)
        else:
            log.warning("http: request from %s failed: %s: %s", client_address[0], type(exc).__name__, exc)


class HealthServer:
    """Serves the endpoints in a daemon thread; ``port=0`` picks a free port."""

    def __init__(self, registry: CollectorRegistry, *, ping: Check, ready: Check,
                 host: str = "127.0.0.1", port: int = 9108, read_timeout_s: float = 10.0,
                 max_connections: int = 32) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = read_timeout_s         # per connection: reading the request, writing the answer

            def parse_request(self) -> bool:
                ok = super().parse_request()
                self.server.request_read(self.connection)  # type: ignore[attr-defined]
                return ok

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                try:
                    body, ctype, code = answer(path)
                except Exception as exc:  # noqa: BLE001 - a failing check is an answer, not a dead port
                    log.warning("http: %s failed: %s: %s", path, type(exc).__name__, exc)
                    body = json.dumps({"ok": False, "detail": f"{type(exc).__name__}: {exc}"}).encode()
                    ctype, code = "application/json", 500
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                log.debug("http: " + fmt, *args)

        def answer(path: str) -> tuple[bytes, str, int]:
            if path == "/metrics":
                return generate_latest(registry), CONTENT_TYPE_LATEST, 200
            if path in ("/api/ping", "/api/ready"):
                ok, detail = (outer.ping if path == "/api/ping" else outer.ready)()
                return json.dumps({"ok": ok, "detail": detail}).encode(), "application/json", 200 if ok else 503
            return b'{"error":"not found"}', "application/json", 404

        self.ping, self.ready = ping, ready
        self.server = _Server((host, port), Handler, max_connections=max_connections)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
