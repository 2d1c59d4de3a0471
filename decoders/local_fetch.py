"""Local files, read only from under the configured roots.

A path may be absolute, ``file://`` or relative (then looked up under each root
in order).  The check is made on the fully resolved path, so ``..`` and
symbolic links that lead out of every root are refused.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sidepath.core.errors import FetchError
from sidepath.decoders.fetched import Fetched
from sidepath.decoders.refs import shown

__all__ = ["LocalFiles"]


class LocalFiles:
    """Opens local media files under ``roots``; none configured means local paths are refused."""

    def __init__(self, roots: Sequence[str | os.PathLike[str]], *, max_bytes: int) -> None:
        self.roots = tuple(Path(os.path.realpath(os.fspath(r))) for r in roots)
        self.max_bytes = int(max_bytes)

    def _path_of(self, ref: str) -> str:
        if ref[:5].lower() != "file:":
            return ref
        parts = urlsplit(ref)
        if parts.netloc not in ("", "localhost"):
            raise FetchError(f"file URL {shown(ref)!r} names host {parts.netloc!r}; only local files "
                             f"(file:///path) can be read")
        return unquote(parts.path)

    def fetch(self, ref: str) -> Fetched:
        raw = self._path_of(ref)
        if not self.roots:
            raise FetchError(f"local path {shown(raw)!r} refused: reading local files is off; "
                             f"set decode.file_roots to the folders media may be read from")
        if "\x00" in raw:
            raise FetchError(f"local path {shown(raw)!r} contains a NUL byte")
        candidates = [Path(raw)] if os.path.isabs(raw) else [root / raw for root in self.roots]
        outside = 0
        for cand in candidates:
            real = Path(os.path.realpath(cand))
            if not any(real.is_relative_to(root) for root in self.roots):
                outside += 1
                continue
            try:
                st = real.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise FetchError(f"cannot read local path {shown(raw)!r}: {exc.strerror}") from exc
            if not stat.S_ISREG(st.st_mode):
                raise FetchError(f"local path {shown(raw)!r} is not a regular file")
            if not os.access(real, os.R_OK):
                raise FetchError(f"cannot read local path {shown(raw)!r}: permission denied")
            size = st.st_size
            if size > self.max_bytes:
                raise FetchError(f"local file {shown(raw)!r} is {size} bytes, over decode.max_bytes="
                                 f"{self.max_bytes}; raise decode.max_bytes or send a smaller file")
            return Fetched(source=shown(raw), size=size, path=str(real))
        if outside == len(candidates):
            # the result row names the key, the log names the folders (not for other teams to read)
            roots = ", ".join(str(r) for r in self.roots)
            fix = "move the file under a root or add its folder to decode.file_roots"
            raise FetchError(f"local path {shown(raw)!r} is outside decode.file_roots; {fix}",
                             detail=f"local path {shown(raw)!r} is outside decode.file_roots ({roots}); {fix}")
        raise FetchError(f"no such file: {shown(raw)!r} (looked under decode.file_roots)")
