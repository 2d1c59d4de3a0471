"""Pure rules of fetching: reference classification, address classes, allow-list matching."""
from __future__ import annotations

import base64
import ipaddress

import pytest

from sidepath.core.errors import ConfigError, FetchError
from sidepath.decoders.address_guard import AddressGuard, forbidden_reason
from sidepath.decoders.inline import decode_inline
from sidepath.decoders.refs import classify_ref, shown


@pytest.mark.parametrize("ref, kind", [
    ("http://media.example/a.mp4", "http"),
    ("HTTPS://media.example/a.mp4", "http"),
    ("file:///srv/media/a.mp4", "file"),
    ("/srv/media/a.mp4", "file"),
    ("./a.mp4", "file"),
    ("clips/a.mp4", "file"),
    ("data:image/png;base64,iVBORw0KGgo=", "inline"),
    (base64.b64encode(b"\x89PNG" + bytes(40)).decode(), "inline"),
    (base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(40)).decode(), "inline"),   # bare JPEG base64 starts "/9j/"
])
def test_references_are_classified(ref, kind):
    assert classify_ref(ref).kind == kind


@pytest.mark.parametrize("ref", ["ftp://host/a.mp4", "gopher://x/", "s3://bucket/key", "javascript:alert(1)"])
def test_unsupported_schemes_are_refused_with_the_fix(ref):
    with pytest.raises(FetchError, match=r"unsupported URL scheme '\w+' in .*; use http\(s\)://, file://, data:"):
        classify_ref(ref)


def test_empty_reference_is_refused():
    with pytest.raises(FetchError, match="empty media reference"):
        classify_ref("  ")


def test_shown_hides_credentials_and_shortens_inline_data():
    assert shown("http://user:secret@host:8080/a.mp4?x=1") == "http://***@host:8080/a.mp4?x=1"
    long = "data:image/png;base64," + "A" * 10000
    assert "10022 characters inline" in shown(long) and len(shown(long)) < 80


@pytest.mark.parametrize("addr, reason", [
    ("127.0.0.2", "a loopback"), ("10.1.2.3", "a private"), ("172.16.0.1", "a private"),
    ("192.168.1.1", "a private"), ("169.254.169.254", "a link-local"), ("0.0.0.0", "an unspecified"),
    ("224.0.0.1", "a multicast"), ("100.64.0.1", "a non-public"), ("240.0.0.1", "a private"),
    ("::1", "a loopback"), ("fe80::1", "a link-local"), ("fc00::1", "a private"),
    ("::ffff:127.0.0.1", "a loopback"), ("::ffff:169.254.169.254", "a link-local"),
    ("64:ff9b::a00:1", "a private"), ("2002:7f00:1::", "a loopback"),
])
def test_non_public_addresses_are_classified(addr, reason):
    assert forbidden_reason(ipaddress.ip_address(addr)) == reason


def test_documentation_prefixes_are_not_public_either():
    # no real public address appears in the tests; the check is that a reserved range is refused
    assert forbidden_reason(ipaddress.ip_address("192.0.2.1")) is not None
    assert forbidden_reason(ipaddress.ip_address("2001:db8::1")) is not None


def fake_resolver(table):
    def resolve(host, port):
        return table[host]
    return resolve


def test_guard_refuses_when_any_resolved_address_is_forbidden():
    guard = AddressGuard.create(["127.0.0.1"], resolver=fake_resolver({"mixed.test": ["127.0.0.1", "127.0.0.2"]}))
    with pytest.raises(FetchError, match=r"^host mixed.test resolves to a loopback address; "
                                         r"add it to decode.allow_hosts") as caught:
        guard.resolve("mixed.test", 80)
    # the resolved address is for the log only, never for the result row
    assert "127.0.0.2" not in str(caught.value)
    assert "(127.0.0.2)" in caught.value.detail


def test_guard_allows_by_name_by_address_and_by_network():
    table = {"store.test": ["127.0.0.5"], "other.test": ["127.0.0.9"]}
    assert AddressGuard.create(["store.test"], resolver=fake_resolver(table)).resolve("store.test", 80) == ["127.0.0.5"]
    assert AddressGuard.create(["127.0.0.9"], resolver=fake_resolver(table)).resolve("other.test", 80) == ["127.0.0.9"]
    assert AddressGuard.create(["127.0.0.0/29"], resolver=fake_resolver(table)).resolve("store.test", 80) == [
        "127.0.0.5"
    ]
    with pytest.raises(FetchError):
        AddressGuard.create(["127.0.0.0/29"], resolver=fake_resolver(table)).resolve("other.test", 80)
    assert AddressGuard.create([], allow_private=True, resolver=fake_resolver(table)).resolve("other.test", 80)


def test_guard_checks_ip_literals_without_resolving():
    calls = []
    guard = AddressGuard.create([], resolver=lambda h, p: calls.append(h) or [])
    with pytest.raises(FetchError, match=r"^host 127.0.0.2 is a loopback address; add it to decode.allow_hosts"):
        guard.resolve("127.0.0.2", 80)
    with pytest.raises(FetchError, match="host ::1 is a loopback address"):
        guard.resolve("[::1]", 80)
    assert calls == []


def test_bad_allow_hosts_entry_is_a_config_error():
    with pytest.raises(ConfigError, match="decode.allow_hosts"):
        AddressGuard.create(["10.0.0.0/99"])


def test_inline_base64_variants():
    payload = bytes(range(256)) * 3
    std = base64.b64encode(payload).decode()
    url_safe = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    assert decode_inline(std, max_bytes=10_000).data == payload
    assert decode_inline(url_safe, max_bytes=10_000).data == payload
    assert decode_inline("data:application/octet-stream;base64," + std, max_bytes=10_000).data == payload
    assert decode_inline("data:text/plain,hello%20world", max_bytes=100).data == b"hello world"


def test_inline_is_capped_before_decoding():
    with pytest.raises(FetchError, match=r"inline data .* is about 7500 bytes, over decode.max_bytes=1000"):
        decode_inline("A" * 10000, max_bytes=1000)


def test_invalid_base64_is_one_line():
    with pytest.raises(FetchError, match=r"invalid base64 in .*; send standard or URL-safe base64"):
        decode_inline("data:image/png;base64,@@@@####", max_bytes=1000)


@pytest.mark.parametrize("addr", ["169.254.169.254", "169.254.0.1", "fe80::1", "fe80::a9fe:a9fe",
                                  "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::"])
def test_allow_private_does_not_admit_link_local_metadata_addresses(addr):
    # pure classification: the fake resolver answers, nothing connects
    table = {"metadata.test": [addr]}
    guard = AddressGuard.create([], allow_private=True, resolver=fake_resolver(table))
    with pytest.raises(FetchError, match="a link-local address; add it to decode.allow_hosts"):
        guard.resolve("metadata.test", 80)
    with pytest.raises(FetchError, match="is a link-local address"):
        guard.resolve(addr, 80)
    # an explicit entry admits it, by name or by network
    addr = str(ipaddress.ip_address(addr))
    assert AddressGuard.create(["metadata.test"], allow_private=True,
                               resolver=fake_resolver(table)).resolve("metadata.test", 80) == [addr]
    assert AddressGuard.create([f"{addr}/128" if ":" in addr else addr],
                               resolver=fake_resolver(table)).resolve("metadata.test", 80) == [addr]


def test_allow_private_still_admits_private_and_loopback_addresses():
    table = {"store.test": ["10.1.2.3", "127.0.0.2", "fc00::1"]}
    assert AddressGuard.create([], allow_private=True, resolver=fake_resolver(table)).resolve("store.test", 80) \
        == ["10.1.2.3", "127.0.0.2", "fc00::1"]
