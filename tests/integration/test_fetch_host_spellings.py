"""Property tests of the URL parser and the address guard over generated host spellings.

Every spelling of a loopback address (decimal, hex, octal, short forms, IPv6-mapped,
trailing dot, userinfo tricks) is refused before a connection is made: the canary on
127.0.0.2 is never contacted.  Spellings of private and link-local addresses go through
the parser and the guard only (nothing may connect to them, even if the guard failed).
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidepath.core.errors import FetchError
from sidepath.decoders import Fetcher
from sidepath.decoders.address_guard import AddressGuard


def numeric_resolver(host: str, port: int) -> list[str]:
    """What the C library does with a numeric host (inet_aton forms), without any DNS query."""
    try:
        return [socket.inet_ntoa(socket.inet_aton(host))]
    except OSError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def _spellings(addr: ipaddress.IPv4Address) -> st.SearchStrategy[str]:
    a, b, c, d = addr.packed
    n = int(addr)
    forms = [
        str(addr), f"{n}", f"{n:#x}", f"{n:#X}", f"0{n:o}",
        f"{a:#x}.{b:#x}.{c:#x}.{d:#x}", f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        f"{a}.{(b << 16) | (c << 8) | d}", f"{a}.{b}.{(c << 8) | d}", f"{str(addr)}.",
        f"[::ffff:{addr}]", f"[::FFFF:{a:x}{b:02x}:{c:x}{d:02x}]", f"[0:0:0:0:0:ffff:{addr}]",
    ]
    return st.sampled_from(forms)


def _urls(hosts: st.SearchStrategy[str], port: int) -> st.SearchStrategy[str]:
    tricks = st.sampled_from(["", "media.test@", "user:pw@", "media.test:80@"])
    return st.builds(lambda t, h, s: f"{s}://{t}{h}:{port}/latest/meta-data/", tricks, hosts,
                     st.sampled_from(["http", "HTTP", "hTTp"]))


loopback = st.integers(int(ipaddress.IPv4Address("127.0.0.0")), int(ipaddress.IPv4Address("127.255.255.255"))) \
    .map(ipaddress.IPv4Address)
canary_addr = st.just(ipaddress.IPv4Address("127.0.0.2"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_spelling_of_a_loopback_address_reaches_it(canary_server, data):
    addr = data.draw(st.one_of(canary_addr, loopback))
    url = data.draw(_urls(_spellings(addr), canary_server.port))
    fetcher = Fetcher(resolver=numeric_resolver, retries=0, timeout_s=2.0)
    with pytest.raises(FetchError, match=r"(is|resolves to) a loopback address"):
        fetcher.fetch(url)
    assert not canary_server.contacted


_NON_PUBLIC = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8"]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), allow_private=st.booleans())
def test_the_guard_refuses_every_spelling_of_a_non_public_address(data, allow_private):
    net = ipaddress.ip_network(data.draw(st.sampled_from(_NON_PUBLIC)))
    addr = ipaddress.IPv4Address(data.draw(st.integers(int(net.network_address), int(net.broadcast_address))))
    url = data.draw(_urls(_spellings(addr), 80))
    host = urlsplit(url).hostname          # the parser the fetcher uses
    assert host is not None
    guard = AddressGuard.create([], allow_private=allow_private, resolver=numeric_resolver)
    if allow_private and not addr.is_link_local:
        [got] = guard.resolve(host, 80)                     # admitted, as configured (no connection here)
        ip = ipaddress.ip_address(got)
        assert (getattr(ip, "ipv4_mapped", None) or ip) == addr
    else:
        with pytest.raises(FetchError, match="address; add it to decode.allow_hosts"):
            guard.resolve(host, 80)
