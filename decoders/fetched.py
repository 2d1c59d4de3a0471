"""The bytes of one media reference, in memory or as a checked local file."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["Fetched"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a fetch produced: either ``data`` (in memory) or ``path`` (a local file under a root).

    ``source`` is the reference as messages show it (shortened, no credentials);
    ``size`` the number of bytes read or to be read.
    """

    source: str
    size: int
    data: bytes | None = None
    path: str | None = None
    content_type: str = ""

    def open(self) -> BinaryIO:
        """A fresh binary stream over the content; the caller closes it."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")

    def head(self, n: int = 64) -> bytes:
        """The first ``n`` bytes, for sniffing the format."""
        if self.data is not None:
            return self.data[:n]
        with self.open() as f:
            return f.read(n)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        with self.open() as f:
            return f.read()
