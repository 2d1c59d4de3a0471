"""The SSRF guard: which hosts a fetch may connect to, decided on resolved addresses.

``AddressGuard.resolve(host)`` resolves a host name once and returns the
addresses the caller must connect to (never the name again, so a DNS answer
that changes between the check and the connect cannot swap in another
address).  By default every address that is loopback, link-local, private,
shared (CGNAT), multicast, reserved or unspecified is refused, and one such
address among several refuses the whole host.  ``allow_hosts`` lists host names,
IP addresses or CIDR networks that may resolve to such addresses anyway.
``allow_private`` admits them all except link-local ones (169.254.0.0/16, where
cloud metadata services answer, and fe80::/10, also inside IPv6 forms): those
need an ``allow_hosts`` entry of their own.  A refusal names the resolved address
in the log only (``FetchError.detail``), never in the result row.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sidepath.core.errors import ConfigError, FetchError

__all__ = ["AddressGuard", "Resolver", "system_resolver", "forbidden_reason", "is_link_local"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: host, port -> addresses as text; the default asks the system resolver
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NO_SUCH_NAME = frozenset(getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n))


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def _embedded_v4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """An IPv4 address carried inside an IPv6 one (mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def forbidden_reason(addr: IPAddress) -> str | None:
    """Why ``addr`` is not a public unicast address, or None when it is."""
    inner = _embedded_v4(addr)
    if inner is not None:
        return forbidden_reason(inner)
    for attr, reason in (("is_unspecified", "an unspecified"), ("is_loopback", "a loopback"),
                         ("is_link_local", "a link-local"), ("is_multicast", "a multicast"),
                         ("is_private", "a private"), ("is_reserved", "a reserved")):
        if getattr(addr, attr):
            return reason
    if not addr.is_global:                       # e.g. 100.64.0.0/10, shared address space
        return "a non-public"
    return None


def is_link_local(addr: IPAddress) -> bool:
    """169.254.0.0/16 or fe80::/10, also inside a mapped, 6to4, Teredo or NAT64 address."""
    inner = _embedded_v4(addr)
    return is_link_local(inner) if inner is not None else addr.is_link_local


@dataclass(frozen=True)
class AddressGuard:
    """Decides whether a host may be fetched from; see the module docstring."""

    allow_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    resolver: Resolver = system_resolver
    _names: frozenset[str] = field(init=False, repr=False)
    _nets: tuple[IPNetwork, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names, nets = set(), []
        for entry in self.allow_hosts:
            text = str(entry).strip().lower().strip("[]")
            if not text:
                continue
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                if "/" in text or ":" in text:
                    raise ConfigError("decode.allow_hosts", entry,
                                      "list host names, IP addresses or CIDR networks such as 10.1.0.0/16") from None
                names.add(text.rstrip("."))
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_nets", tuple(nets))

    @classmethod
    def create(cls, allow_hosts: Iterable[str] = (), allow_private: bool = False,
               resolver: Resolver | None = None) -> AddressGuard:
        return cls(tuple(allow_hosts), bool(allow_private), resolver or system_resolver)

    def _allowed(self, host: str, addr: IPAddress) -> bool:
        if host in self._names:
            return True
        if self.allow_private and not is_link_local(addr):
            return True
        return any(addr.version == net.version and addr in net for net in self._nets)

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``; ``FetchError`` when any is forbidden."""
        name = host.strip("[]").lower().rstrip(".")
        try:
            literal: IPAddress | None = ipaddress.ip_address(name)
        except ValueError:
            literal = None
        if literal is not None:
            texts = [str(literal)]
        else:
            try:
                texts = list(self.resolver(name, port))
            except (OSError, UnicodeError, ValueError) as exc:
                # "no such name" is final; a failing or slow resolver is worth another try
                final = isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_NAME
                raise FetchError(f"cannot resolve host {name!r}: {getattr(exc, 'strerror', None) or exc}",
                                 retriable=not final) from exc
            if not texts:
                raise FetchError(f"cannot resolve host {name!r}: no addresses", retriable=True)
        checked = []
        for text in texts:
            addr = ipaddress.ip_address(text)
            reason = forbidden_reason(addr)
            if reason is not None and not self._allowed(name, addr):
                fix = "add it to decode.allow_hosts if it is a trusted media store"
                if literal is not None:
                    raise FetchError(f"host {name} is {reason} address; {fix}")
                raise FetchError(f"host {name} resolves to {reason} address; {fix}",
                                 detail=f"host {name} resolves to {reason} address ({addr}); {fix}")
            checked.append(str(addr))
        return checked
