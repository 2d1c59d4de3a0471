"""The health and metrics port answers every request with one status and at most one log line."""
from __future__ import annotations

import json
import logging
import socket
import struct
import time
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Gauge

from sidepath.worker.http import HealthServer


def _server(registry=None, ping=lambda: (True, "alive"), ready=lambda: (True, "ready")) -> HealthServer:
    return HealthServer(registry or CollectorRegistry(), ping=ping, ready=ready, host="127.0.0.1", port=0).start()


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_endpoints_answer():
    server = _server(ready=lambda: (False, "no partitions assigned"))
    try:
        assert _get(server.port, "/api/ping") == (200, b'{"ok": true, "detail": "alive"}')
        code, body = _get(server.port, "/api/ready")
        assert code == 503 and json.loads(body) == {"ok": False, "detail": "no partitions assigned"}
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_a_check_that_raises_is_a_500_and_one_log_line(capfd, caplog):
    def broken() -> tuple[bool, str]:
        raise RuntimeError("engine not started")

    server = _server(ping=broken)
    try:
        with caplog.at_level(logging.WARNING, logger="sidepath.worker.http"):
            code, body = _get(server.port, "/api/ping")
    finally:
        server.stop()
    assert code == 500 and json.loads(body) == {"ok": False, "detail": "RuntimeError: engine not started"}
    assert [r.getMessage() for r in caplog.records] == ["http: /api/ping failed: RuntimeError: engine not started"]
    assert "Traceback" not in capfd.readouterr().err


def test_a_scraper_that_hangs_up_mid_answer_leaves_no_traceback(capfd):
    """A Prometheus scrape that times out closes the connection while /metrics is being written."""
    registry = CollectorRegistry()
    g = Gauge("big", "many series", ["i"], registry=registry)
    for i in range(40_000):           # a few MB of text: more than the socket buffers take at once
        g.labels(str(i)).set(i)
    server = _server(registry)
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(1)                                  # the answer has started
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()                                  # reset: the rest of the write fails
        time.sleep(0.5)
        assert _get(server.port, "/api/ping")[0] == 200      # still serving
    finally:
        server.stop()
    err = capfd.readouterr().err
    assert "Exception occurred" not in err and "Traceback" not in err, err
