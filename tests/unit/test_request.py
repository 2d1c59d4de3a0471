from __future__ import annotations

import pytest

from sidepath.core.errors import BadRequest
from sidepath.sinks.base import SourceRef
from sidepath.worker.engine.request import parse_request

SRC = SourceRef("t", 0, 7)


def test_valid_request_carries_extra_fields():
    r = parse_request(b'{"postid": 12, "uid": "u", "seqid": 3, "video": "http://x/v.mp4", "lang": "en"}', SRC)
    assert (r.postid, r.uid, r.seqid, r.kind, r.ref) == ("12", "u", "3", "video", "http://x/v.mp4")
    assert r.extra == {"lang": "en"} and r.source == SRC


@pytest.mark.parametrize("value, fragment", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "must be an object"),
    (b'{"uid": "u", "seqid": 1, "image": "x"}', "missing field(s) postid"),
    (b'{"postid": true, "uid": "u", "seqid": 1, "image": "x"}', "'postid' must be a string or an integer"),
    (b'{"postid": {"a": 1}, "uid": "u", "seqid": 1, "image": "x"}', "'postid' must be a string"),
    (b'{"postid": 1, "uid": "u", "seqid": 1}', "no media"),
    (b'{"postid": 1, "uid": "u", "seqid": 1, "image": 5}', "'image' must be a string"),
    (None, "empty message"),
    (b"[" * 100000 + b"]" * 100000, "not JSON"),
    (b'{"postid":1,"uid":"u","seqid":1,"image":"x","deep":' + b"[" * 100 + b"]" * 100 + b"}",
     "nested more than 64 levels"),
])
def test_bad_requests_say_why(value, fragment):
    with pytest.raises(BadRequest) as e:
        parse_request(value, SRC)
    assert fragment in str(e.value)
    assert e.value.stage == "parse"


def test_oversized_message_refused():
    with pytest.raises(BadRequest, match="over the"):
        parse_request(b'{"postid": 1, "data": "' + b"A" * 2_000_000 + b'"}', SRC)
