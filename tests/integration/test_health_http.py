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

from sidepath.worker.ops.http import HealthServer


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
        with caplog.at_level(logging.WARNING, logger="sidepath.worker.ops.http"):
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


def _http_threads() -> int:
    import threading
    return sum(1 for t in threading.enumerate() if "process_request" in t.name)


def _wait_for(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_idle_half_sent_connections_cannot_exhaust_the_port():
    """A slow client holding many half-sent requests: threads stay under the cap, probes answer."""
    server = HealthServer(CollectorRegistry(), ping=lambda: (True, "alive"), ready=lambda: (True, "ready"),
                          host="127.0.0.1", port=0, read_timeout_s=60.0, max_connections=8).start()
    before = _http_threads()
    held = []
    try:
        for _ in range(120):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /api/ping HTTP/1.1\r\nHost: x\r\n")        # never the blank line
            held.append(s)
        assert _wait_for(lambda: _http_threads() - before <= 8 + 1), _http_threads() - before
        assert _get(server.port, "/api/ping") == (200, b'{"ok": true, "detail": "alive"}')
        assert _get(server.port, "/api/ready")[0] == 200
        assert _http_threads() - before <= 8 + 1
    finally:
        for s in held:
            s.close()
        server.stop()


def test_a_half_sent_request_is_closed_after_the_read_timeout():
    server = HealthServer(CollectorRegistry(), ping=lambda: (True, "alive"), ready=lambda: (True, "ready"),
                          host="127.0.0.1", port=0, read_timeout_s=0.5).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"GET /api/ping HTTP/1.1\r\n")
            assert s.recv(100) == b""            # the server hung up (our own 30 s timeout never hit)
        assert _get(server.port, "/api/ping")[0] == 200
    finally:
        server.stop()


def test_the_port_binds_loopback_by_default():
    from sidepath.worker.config import load_config
    cfg = load_config(None, environ={})
    assert cfg.metrics.host == "127.0.0.1"
    server = HealthServer(CollectorRegistry(), ping=lambda: (True, ""), ready=lambda: (True, ""), port=0).start()
    try:
        assert server.server.server_address[0] == "127.0.0.1"
    finally:
        server.stop()
