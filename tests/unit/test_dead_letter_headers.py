"""Dead-letter headers: a topic writer's headers cannot pose as sidepath's own."""
from __future__ import annotations

from sidepath.sinks.base import DeadLetter, SourceRef
from sidepath.sinks.kafka import KafkaDeadLetterSink


def _letter(headers: tuple[tuple[str, bytes], ...]) -> DeadLetter:
    return DeadLetter(b"post-1", b"{}", headers, 1_700_000_000_000, SourceRef("posts", 0, 5), "sidepath",
                      "decode", "DecodeError", "not a video", attempts=1, model="age")


def test_incoming_dlq_headers_cannot_spoof_the_stage():
    spoof = (("sidepath.dlq.stage", b"sink"), ("SIDEPATH.DLQ.attempts", b"99"), ("trace", b"t-1"))
    headers = KafkaDeadLetterSink._message(_letter(spoof)).headers
    names = [k for k, _ in headers]
    # the first header a consumer finds under our name is ours
    assert dict(reversed(headers))["sidepath.dlq.stage"] == b"decode"
    assert names.count("sidepath.dlq.stage") == 1
    assert [k for k in names if k.lower().startswith("sidepath.dlq.attempts")] == ["sidepath.dlq.attempts"]
    # the originals are kept, renamed, after ours
    assert ("original.sidepath.dlq.stage", b"sink") in headers
    assert ("original.SIDEPATH.DLQ.attempts", b"99") in headers
    assert headers[-1] == ("trace", b"t-1")
    assert names.index("sidepath.dlq.timestamp_ms") < names.index("trace")


def test_plain_original_headers_are_kept_unchanged():
    headers = _letter((("trace", b"\x00\x01"),)).info_headers()
    assert headers[0][0] == "sidepath.dlq.topic"
    assert headers[-1] == ("trace", b"\x00\x01")
