"""One HTTP port: /metrics (Prometheus), /api/ping (liveness), /api/ready (readiness)."""
from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HealthServer"]

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


class _Server(ThreadingHTTPServer):
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
                 host: str = "0.0.0.0", port: int = 9108) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
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
        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
