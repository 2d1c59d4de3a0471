"""Text-format logs: a value from a message cannot forge a line or send terminal escapes."""
from __future__ import annotations

import io
import logging

from sidepath.worker.ops.log_format import TextFormatter


def _text_log(msg: str, *args: object, **extra: object) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("sidepath.test.escaping")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    log.warning(msg, *args, extra=extra)
    return out.getvalue()


def test_newlines_and_escape_codes_from_a_message_are_escaped():
    url = "http://127.0.0.1/x.mp4\n12:00:00 INFO    sidepath.worker: all good\x1b[2J\r\x07\u2028"
    line = _text_log("fetch failed for %s", url, postid="p\n1\x1b]0;pwned\x07")
    assert line.count("\n") == 1 and line.endswith("\n")
    assert not any(c in line[:-1] for c in "\x1b\r\x07\u2028")
    assert "x.mp4\\n12:00:00" in line and "\\x1b[2J" in line
    assert "postid=p\\n1\\x1b]0;pwned\\x07" in line


def test_plain_text_and_unicode_are_unchanged():
    line = _text_log("model %s ready on %s", "äge", "cpu", topic="posts")
    assert line.rstrip("\n").endswith("model äge ready on cpu [topic=posts]")


def test_json_logs_escape_c1_controls_too():
    import json

    from sidepath.worker.ops.log_format import JsonFormatter
    record = logging.LogRecord("sidepath.x", logging.WARNING, __file__, 1, "bad %s", ("a\x9b2Jb\u2028c\nd",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\x9b" not in line and "\u2028" not in line
    assert json.loads(line)["message"] == "bad a\x9b2Jb\u2028c\nd"
