"""The hot-path JSON codec answers exactly as the standard library would (sinks/json_codec.py)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidepath.sinks.json_codec import decode, encode

_scalars = st.none() | st.booleans() | st.text() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.integers(min_value=-(2 ** 80), max_value=2 ** 80)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_decode_equals_json_loads_for_any_document(value):
    data = json.dumps(value).encode()
    got = decode(data)
    assert got == json.loads(data)
    assert type(got) is type(json.loads(data))


@pytest.mark.parametrize("literal", [
    b'{"seqid": 123456789012345678901234567890}',     # past 64 bits: orjson alone reads a float
    b'{"seqid": -9223372036854775809}',               # 19 digits, just past int64
    b'[18446744073709551616, 1]',
])
def test_integers_beyond_64_bits_stay_exact(literal):
    assert decode(literal) == json.loads(literal)
    assert all(type(v) is int for v in (decode(literal).values() if literal.startswith(b"{")
                                        else decode(literal)))


@pytest.mark.parametrize("data", [
    b'{"a": NaN}', b'{"a": Infinity}', b'\xef\xbb\xbf{"a": 1}', '{"a": "\u00e9"}'.encode("utf-16"),
    b'{"a": "\\ud800"}',
])
def test_what_json_accepts_and_orjson_refuses_still_parses(data):
    got, want = decode(data), json.loads(data)
    assert json.dumps(got) == json.dumps(want)        # NaN != NaN: compare the text


@pytest.mark.parametrize("data", [b"", b"{", b'{"a": }', b"[1,]", b"\xff\xfe\xfd", b"nul"])
def test_invalid_json_raises_the_same_error_text(data):
    with pytest.raises(ValueError) as ours:
        decode(data)
    with pytest.raises(ValueError) as theirs:
        json.loads(data)
    assert str(ours.value) == str(theirs.value)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_encode_round_trips_through_json(value):
    assert json.loads(encode(value)) == value


def test_encode_is_compact_utf8_and_handles_what_models_return():
    assert encode({"b": "é", 1: [1.5]}) == '{"b":"é","1":[1.5]}'.encode()
    assert json.loads(encode({"v": np.arange(3, dtype=np.float32), "n": np.int64(7), "f": np.float16(0.5)})) \
        == {"v": [0.0, 1.0, 2.0], "n": 7, "f": 0.5}
    assert json.loads(encode({"big": 2 ** 70})) == {"big": 2 ** 70}     # past orjson: the fallback
    assert json.loads(encode({"x": object.__new__(type("Odd", (), {"__str__": lambda s: "odd"}))})) == {"x": "odd"}


def test_non_finite_floats_become_null_not_invalid_json():
    text = encode({"a": math.nan, "b": math.inf, "c": 1.0})
    assert json.loads(text) == {"a": None, "b": None, "c": 1.0}
    assert b"NaN" not in text
