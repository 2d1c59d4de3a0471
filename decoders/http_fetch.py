"""HTTP(S) downloads that are pooled, capped, retried and checked hop by hop.

Each hop of a redirect chain is resolved and checked by the ``AddressGuard``,
then the connection goes to the checked IP address (the URL's host name is
only sent as ``Host`` and, for HTTPS, as SNI and the name the certificate must
match).  Transient failures (5xx, 408, 429, timeouts, resets) are retried with
jittered exponential backoff; 4xx answers and refused addresses are not.  A 429 or 503 with
``Retry-After`` (seconds or an HTTP date) waits at least that long before the next try, never past
the fetch deadline.  Per media host, ``HostLimits`` caps concurrent connections and requests per
second (decoders/host_limits.py).  The
size cap is checked against ``Content-Length`` first and again while streaming,
so an endless body costs at most ``max_bytes``.
"""
from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError, ProxyError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from sidepath.core.errors import FetchError
from sidepath.decoders.address_guard import AddressGuard
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.host_limits import HostLimits, count_throttled
from sidepath.decoders.refs import shown

__all__ = ["HttpFetcher", "RETRY_STATUSES"]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 256 * 1024
_PUSH_BACK = frozenset({429, 503})       # the server asks us to slow down; Retry-After says for how long


class _ServerBusy(FetchError):
    """A 429/503 answer; ``retry_after_s`` is the server's Retry-After (None when it gave none)."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message, retriable=True)
        self.retry_after_s = retry_after_s


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str
    auth: str | None


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"malformed URL {shown(url)!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {scheme!r} in {shown(url)!r}; use http or https")
    if not parts.hostname:
        raise FetchError(f"URL {shown(url)!r} has no host")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode()
    return _Target(url, scheme, parts.hostname, port or (443 if scheme == "https" else 80), path, auth)


def _host_header(t: _Target) -> str:
    host = f"[{t.host}]" if ":" in t.host else t.host
    default = 443 if t.scheme == "https" else 80
    return host if t.port == default else f"{host}:{t.port}"


class HttpFetcher:
    """GETs one URL into memory; see the module docstring for the rules."""

    def __init__(self, *, guard: AddressGuard, max_bytes: int, timeout_s: float, deadline_s: float,
                 retries: int, backoff_s: float, max_redirects: int, ca_certs: str | None,
                 pool_size: int, user_agent: str, limits: HostLimits | None = None) -> None:
        self.guard, self.max_bytes = guard, int(max_bytes)
        self.timeout_s, self.deadline_s = float(timeout_s), float(deadline_s)
        self.retries, self.backoff_s, self.max_redirects = int(retries), float(backoff_s), int(max_redirects)
        self.user_agent = user_agent
        self.limits = limits if limits is not None else HostLimits()
        # retries=False: this class retries itself (it must re-check addresses and re-open the cap)
        self.pool = urllib3.PoolManager(num_pools=64, maxsize=max(1, pool_size), block=False, retries=False,
                                        ca_certs=ca_certs)

    def close(self) -> None:
        self.pool.clear()

    def fetch(self, url: str) -> Fetched:
        backoff = wait_exponential_jitter(initial=self.backoff_s, max=max(self.backoff_s * 16, 0.001),
                                          jitter=self.backoff_s)

        def wait(state: RetryCallState) -> float:
            # a server's Retry-After is a floor under the backoff; the deadline a ceiling over both
            exc = state.outcome.exception() if state.outcome else None
            floor = getattr(exc, "retry_after_s", None) or 0.0
            return max(0.0, min(max(backoff(state), floor), deadline - time.monotonic()))

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1) | stop_after_delay(self.deadline_s),
            wait=wait,
            retry=retry_if_exception(lambda e: isinstance(e, FetchError) and e.retriable),
            retry_error_callback=self._gave_up,
            before_sleep=lambda st: log.debug("retrying %s after: %s", shown(url),
                                              st.outcome.exception() if st.outcome else None),
        )
        deadline = time.monotonic() + self.deadline_s
        return retrying(self._follow, url, deadline)

    @staticmethod
    def _gave_up(state: RetryCallState) -> Fetched:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert isinstance(exc, FetchError)
        if state.attempt_number > 1:
            tries = f" (gave up after {state.attempt_number} attempts)"
            raise FetchError(f"{exc}{tries}", retriable=True, detail=f"{exc.detail}{tries}") from exc
        raise exc

    def _follow(self, url: str, deadline: float) -> Fetched:
        first = _target(url)
        target = first
        for _hop in range(self.max_redirects + 1):
            status, location, fetched = self._get(target, deadline)
            if fetched is not None:
                return fetched
            if location is None:
                raise FetchError(f"HTTP {status} redirect without a Location header from {shown(target.url)}")
            nxt = _target(urljoin(target.url, location))
            if nxt.auth is None and target.auth is not None and (nxt.host, nxt.port) == (target.host, target.port):
                nxt = _Target(nxt.url, nxt.scheme, nxt.host, nxt.port, nxt.path, target.auth)
            log.debug("redirect %s -> %s", shown(target.url), shown(nxt.url))
            target = nxt
        raise FetchError(f"too many redirects (more than {self.max_redirects}) from {shown(url)}")

    def _get(self, t: _Target, deadline: float) -> tuple[int, str | None, Fetched | None]:
        addrs = self.guard.resolve(t.host, t.port)
        headers = {"Host": _host_header(t), "User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        if t.auth:
            headers["Authorization"] = t.auth
        kw = {"server_hostname": t.host, "assert_hostname": t.host} if t.scheme == "https" else None
        timeout = urllib3.Timeout(connect=self.timeout_s, read=self.timeout_s)
        with self.limits.slot(t.host, deadline):
            return self._get_from(t, addrs, headers, kw, timeout, deadline)

    def _get_from(self, t: _Target, addrs: list[str], headers: dict[str, str], kw: dict[str, str] | None,
                  timeout: urllib3.Timeout, deadline: float) -> tuple[int, str | None, Fetched | None]:
        last: Exception | None = None
        for addr in addrs:                    # the checked addresses only, in resolver order
            pool = self.pool.connection_from_host(addr, t.port, t.scheme, pool_kwargs=kw)
            try:
                resp = pool.urlopen("GET", t.path, headers=headers, redirect=False, retries=False,
                                    preload_content=False, decode_content=True, timeout=timeout,
                                    assert_same_host=False)
            except NewConnectionError as exc:
                last = exc
                continue
            except HTTPError as exc:
                raise self._error(t, exc) from exc
            return self._answer(t, resp, deadline)
        assert last is not None
        raise self._error(t, last) from last

    def _error(self, t: _Target, exc: Exception) -> FetchError:
        where = shown(t.url)
        # before the timeout test: urllib3 2.x derives NewConnectionError (refused, unreachable)
        # from ConnectTimeoutError, so a refused connection would read "timed out"
        if isinstance(exc, NewConnectionError):
            return FetchError(f"cannot connect to {where}: {_reason(exc)}", retriable=True)
        if isinstance(exc, Urllib3Timeout):
            return FetchError(f"timed out after {self.timeout_s:g} s fetching {where}; the server is slow "
                              f"or unreachable (decode.timeout_s)", retriable=True)
        if isinstance(exc, SSLError):
            return FetchError(f"TLS error fetching {where}: {_reason(exc)}")
        if isinstance(exc, (ProtocolError, ProxyError)):
            return FetchError(f"connection broken while fetching {where}: {_reason(exc)}", retriable=True)
        return FetchError(f"HTTP failure fetching {where}: {_reason(exc)}", retriable=True)

    def _answer(self, t: _Target, resp: urllib3.BaseHTTPResponse,
                deadline: float) -> tuple[int, str | None, Fetched | None]:
        done = False
        try:
            status = resp.status
            if status in _REDIRECTS:
                return status, resp.headers.get("Location"), None
            if status in _PUSH_BACK:
                count_throttled(t.host, "server")
                wait_s = retry_after_s(resp.headers.get("Retry-After"))
                if wait_s is not None and time.monotonic() + wait_s > deadline:
                    raise FetchError(f"HTTP {status} for {shown(t.url)} asks to retry after {wait_s:g} s, past the "
                                     f"fetch deadline ({self.deadline_s:g} s); not retried")
                raise _ServerBusy(f"HTTP {status} for {shown(t.url)}", wait_s)
            if status in RETRY_STATUSES or 500 <= status < 600:
                raise FetchError(f"HTTP {status} for {shown(t.url)}", retriable=status not in (501, 505))
            if not 200 <= status < 300:
                raise FetchError(f"HTTP {status} for {shown(t.url)}")
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                raise FetchError(f"{shown(t.url)} is {int(length)} bytes, over decode.max_bytes={self.max_bytes}; "
                                 f"raise decode.max_bytes or send a smaller file")
            body = bytearray()
            try:
                # read1 returns what has arrived, so the deadline is checked even on a slow drip
                while chunk := resp.read1(_CHUNK):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise FetchError(f"{shown(t.url)} sent more than decode.max_bytes={self.max_bytes} bytes; "
                                         f"raise decode.max_bytes or send a smaller file")
                    if time.monotonic() > deadline:
                        raise FetchError(f"fetching {shown(t.url)} took longer than {self.deadline_s:g} s "
                                         f"(got {len(body)} bytes so far)", retriable=False)
            except HTTPError as exc:
                raise self._error(t, exc) from exc
            done = True
            return status, None, Fetched(source=shown(t.url), size=len(body), data=bytes(body),
                                         content_type=resp.headers.get("Content-Type", ""))
        finally:
            if not done:
                resp.close()          # never drain an unread body: it may be oversized or endless
            resp.release_conn()


def _reason(exc: Exception) -> str:
    """The innermost useful text of a urllib3 error, one line."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    # urllib3 wraps messages as "<Connection object at 0x...>: Failed to ...": keep the part after it
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    return text.splitlines()[0] if text else type(exc).__name__
