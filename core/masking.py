"""The one place that hides secrets in URLs and settings before they reach a log or a message.

``mask_url`` parses the URL (any scheme, any case) and replaces with ``***``:

- the password of the userinfo (``user:***@host``), also one holding ``@`` or ``:``;
  with ``keep_user=False`` the whole userinfo (``***@host``);
- the value of every query option whose name looks secret (``is_secret_key``):
  ``password``, ``sslpassword``, ``ssl.key.password``, ``sasl.password``, ``token``,
  ``api_key``, ``X-Amz-Signature`` ..., names compared case-insensitively and
  after percent-decoding.

Secrets reach a URL through ``${VAR}`` placeholders in those two places only, so the
masked form of an expanded URL is as safe to log as the configured one.

A password holding ``/``, ``?`` or ``#`` must be percent-encoded (RFC 3986; the sink
registry does it for ``${VAR}`` values); unencoded, it is still masked when an ``@``
followed by a host comes later, at the cost of masking a little more than the password.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["mask_url", "is_secret_key", "MASK"]

MASK = "***"

_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*)://")
#: a query option (or setting) whose value is a credential; matched anywhere in the lower-cased name
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|auth|key|signature|^sig$|cookie|session_?id",
                          re.IGNORECASE)
_HOSTS = re.compile(r"[A-Za-z0-9.\-_\[\]:,%]*(?=[/?#]|$)")


def is_secret_key(name: str) -> bool:
    """True for a setting or query option that holds a credential (``sasl.password``, ``Token``)."""
    return bool(_SECRET_NAME.search(unquote_plus(name)))


def _userinfo_end(rest: str) -> int:
    """Index of the '@' that ends the userinfo in ``rest`` (after ``scheme://``), or -1."""
    authority_end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    at = rest.rfind("@", 0, authority_end)
    if at >= 0:
        return at
    _host, colon, after = rest[:authority_end].partition(":")
    if not colon or after.isdigit():        # no password, or host:port
        return -1
    # an unencoded '/', '?' or '#' in the password: the last '@' that a host list follows
    for at in sorted((i for i, c in enumerate(rest) if c == "@"), reverse=True):
        if _HOSTS.match(rest, at + 1):
            return at
    return -1


def _mask_query(query: str) -> str:
    out = []
    for pair in re.split(r"([&;])", query):
        name, eq, _value = pair.partition("=")
        out.append(f"{name}={MASK}" if eq and is_secret_key(name) else pair)
    return "".join(out)


def mask_url(url: str, *, keep_user: bool = True) -> str:
    """``url`` with its credentials replaced by ``***`` (see the module docstring)."""
    text = str(url)
    m = _SCHEME.match(text)
    if m:
        head, rest = text[:m.end()], text[m.end():]
        at = _userinfo_end(rest)
        if at >= 0:
            user, colon, _password = rest[:at].partition(":")
            userinfo = (f"{user}:{MASK}" if colon else user) if keep_user else MASK
            rest = userinfo + rest[at:]
        path, qmark, query = rest.partition("?")
        if qmark:
            query, hash_, fragment = query.partition("#")
            rest = path + "?" + _mask_query(query) + hash_ + fragment
        text = head + rest
    return text
