"""``Fetcher``: one object that turns any media reference into bytes, safely.

It holds the limits that apply to every message (size cap, timeouts, retries,
the SSRF guard, the local roots, the pixel cap the image decoder reads) and a
urllib3 connection pool shared by the decode threads (it is thread-safe).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sidepath.core.errors import ConfigError
from sidepath.decoders.address_guard import AddressGuard, Resolver
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.host_limits import HostLimits
from sidepath.decoders.http_fetch import HttpFetcher
from sidepath.decoders.inline import decode_inline
from sidepath.decoders.local_fetch import LocalFiles
from sidepath.decoders.refs import classify_ref

__all__ = ["Fetcher"]

log = logging.getLogger(__name__)


def _positive(key: str, value: float, fix: str) -> None:
    if not value > 0:
        raise ConfigError(key, value, fix)


class Fetcher:
    """Fetches http(s) URLs, local paths under ``file_roots`` and inline base64.

    Every option is keyword-only; the names match the ``[decode]`` config keys.
    ``deadline_s`` bounds a whole fetch (redirects and retries included; default
    ``max(60, 4 * timeout_s)``), ``timeout_s`` each connect and each read.
    ``resolver`` replaces the system DNS lookup (tests use it to play DNS rebinding).
    """

    def __init__(self, *, max_bytes: int = 256 * 1024 * 1024, timeout_s: float = 15.0, retries: int = 3,
                 allow_hosts: Iterable[str] = (), allow_private: bool = False,
                 file_roots: Iterable[str] = (), max_pixels: int = 64_000_000,
                 deadline_s: float | None = None, backoff_s: float = 0.5, max_redirects: int = 5,
                 ca_certs: str | None = None, pool_size: int = 8, resolver: Resolver | None = None,
                 user_agent: str = "sidepath-fetcher/1", max_connections_per_host: int = 0,
                 max_requests_per_s_per_host: float = 0.0) -> None:
        _positive("decode.max_bytes", max_bytes, "use a positive number of bytes, e.g. 268435456")
        _positive("decode.timeout_s", timeout_s, "use a positive number of seconds, e.g. 15")
        _positive("decode.max_pixels", max_pixels, "use a positive pixel count, e.g. 64000000")
        if int(max_connections_per_host) < 0 or float(max_requests_per_s_per_host) < 0:
            bad = ("decode.max_connections_per_host", max_connections_per_host) if int(max_connections_per_host) < 0 \
                else ("decode.max_requests_per_s_per_host", max_requests_per_s_per_host)
            raise ConfigError(bad[0], bad[1], "use 0 (no cap) or a positive number")
        if int(retries) < 0:
            raise ConfigError("decode.retries", retries, "use 0 or more retries")
        if isinstance(allow_hosts, str) or isinstance(file_roots, str):
            raise ConfigError("decode.allow_hosts" if isinstance(allow_hosts, str) else "decode.file_roots",
                              allow_hosts if isinstance(allow_hosts, str) else file_roots,
                              "give a list, e.g. [\"media.internal\"]")
        self.max_bytes, self.max_pixels = int(max_bytes), int(max_pixels)
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self.guard = AddressGuard.create(allow_hosts, allow_private, resolver)
        self.local = LocalFiles(list(file_roots), max_bytes=self.max_bytes)
        self.http = HttpFetcher(guard=self.guard, max_bytes=self.max_bytes, timeout_s=self.timeout_s,
                                deadline_s=deadline_s if deadline_s is not None else max(60.0, 4 * self.timeout_s),
                                retries=self.retries, backoff_s=backoff_s, max_redirects=max_redirects,
                                ca_certs=ca_certs, pool_size=pool_size, user_agent=user_agent,
                                limits=HostLimits(max_connections=max_connections_per_host,
                                                  requests_per_s=max_requests_per_s_per_host))

    @classmethod
    def from_config(cls, decode: Any, *, threads: int, **overrides: Any) -> Fetcher:
        """Build from ``Config.decode`` (a ``DecodeConfig``); ``threads``: the decode threads that
        share it (the resolved count, not 0 for automatic), so each may keep a connection per host
        without the pool discarding it.  Keyword overrides win."""
        opts = dict(max_bytes=decode.max_bytes, timeout_s=decode.timeout_s, retries=decode.retries,
                    allow_hosts=list(decode.allow_hosts), allow_private=decode.allow_private,
                    file_roots=list(decode.file_roots), max_pixels=decode.max_pixels,
                    pool_size=max(2, threads), max_connections_per_host=decode.max_connections_per_host,
                    max_requests_per_s_per_host=decode.max_requests_per_s_per_host)
        opts.update(overrides)
        return cls(**opts)

    def fetch(self, ref: str) -> Fetched:
        """The bytes behind ``ref``; raises ``FetchError`` with a one-line reason."""
        kind = classify_ref(ref)
        if kind.kind == "http":
            return self.http.fetch(kind.text)
        if kind.kind == "inline":
            return decode_inline(kind.text, max_bytes=self.max_bytes)
        return self.local.fetch(kind.text)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
