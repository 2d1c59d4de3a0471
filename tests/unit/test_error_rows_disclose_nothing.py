"""Error rows and dead letters are read by other teams: no resolved internal address and no
configured folder goes into them; the worker's log keeps those details."""
from __future__ import annotations

import logging
import queue

import pytest
from prometheus_client import CollectorRegistry

from sidepath.core.errors import FetchError
from sidepath.decoders.address_guard import AddressGuard
from sidepath.decoders.local_fetch import LocalFiles
from sidepath.models import create_model
from sidepath.sinks.base import SourceRef
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.request import parse_request
from sidepath.worker.engine.stages import Failures
from sidepath.worker.ops.metrics import build_metrics


def _fail_one(exc: BaseException):
    out: queue.SimpleQueue = queue.SimpleQueue()
    failures = Failures([create_model("noop")], out, build_metrics(CollectorRegistry()), "g")
    source = SourceRef("in", 0, 7)
    value = b'{"postid": "p7", "uid": "u", "seqid": "1", "image": "x"}'
    inf = Inflight(source, 0, None, value, (), None, request=parse_request(value, source))
    failures.fail(inf, "fetch", exc)
    [completion] = out.get_nowait()          # one model: one error row, with the dead letter
    return completion.result, completion.letter


def _raised(fn) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fn()
    return caught.value


def test_resolved_internal_address_stays_in_the_log(caplog):
    # the resolver is a fake: nothing connects
    guard = AddressGuard.create([], resolver=lambda host, port: ["127.0.0.2"])
    exc = _raised(lambda: guard.resolve("media.test", 80))
    with caplog.at_level(logging.WARNING, logger="sidepath.worker.engine.stages"):
        result, letter = _fail_one(exc)
    assert "media.test resolves to a loopback address" in result.msg
    assert "127.0.0.2" not in result.msg and "127.0.0.2" not in letter.error
    assert "127.0.0.2" in caplog.text


def test_configured_file_roots_stay_in_the_log(tmp_path, caplog):
    root = tmp_path / "media-root-folder"
    root.mkdir()
    (tmp_path / "elsewhere.jpg").write_bytes(b"x")
    files = LocalFiles([root], max_bytes=1000)
    exc = _raised(lambda: files.fetch("../elsewhere.jpg"))
    with caplog.at_level(logging.WARNING, logger="sidepath.worker.engine.stages"):
        result, letter = _fail_one(exc)
    assert "outside decode.file_roots" in result.msg
    assert "media-root-folder" not in result.msg and str(tmp_path) not in result.msg
    assert "media-root-folder" not in letter.error
    assert "media-root-folder" in caplog.text
