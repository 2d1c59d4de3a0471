"""An append-only file of lines: whole batches, fsync'd, never a torn line.

``AppendOnlyFile.append(lines)`` writes one batch with ``write`` + ``fsync`` and
returns only when the batch is on disk.  A crash in the middle leaves at most a
partial last line; the next ``open`` cuts the file back to its last newline
(those bytes were never acknowledged).  A write that fails half-way (disk full)
is cut back at once, so a later retry never appends after half a line.

Rotation (optional) renames the live file to ``<stem>.<UTC time>Z<suffix>``
before a batch that would take it over ``rotate_bytes``, or once it is older
than ``rotate_s``; names sort in time order, and ``segments(path)`` lists them
oldest first with the live file last.  An exclusive ``flock`` keeps a second
process from interleaving its lines into the same file.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sidepath.core.errors import ConfigError, SinkError, TransientSinkError

__all__ = ["AppendOnlyFile", "segments", "repair_tail"]

log = logging.getLogger(__name__)

_TAIL_CHUNK = 1 << 16


def _fsync_dir(path: Path) -> None:
    """Make a create or rename durable: fsync the directory entry."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_tail(fd: int) -> int:
    """Cut an open file back to just after its last newline; return the bytes cut."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            break
        end = start
    else:
        keep = 0
    if keep < size:
        os.ftruncate(fd, keep)
        os.fsync(fd)
    return size - keep


def _rotated_name(path: Path, when: float) -> Path:
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%S_%f")
    candidate = path.with_name(f"{path.stem}.{stamp}Z{path.suffix}")
    n = 1
    while candidate.exists():          # two rotations within one microsecond
        candidate = path.with_name(f"{path.stem}.{stamp}Z-{n:03d}{path.suffix}")
        n += 1
    return candidate


def segments(path: str | os.PathLike[str]) -> list[Path]:
    """Rotated segments of ``path`` oldest first, then ``path`` itself if it exists."""
    p = Path(path)
    pattern = re.compile(re.escape(p.stem) + r"\.\d{8}T\d{6}_\d{6}Z(-\d{3})?" + re.escape(p.suffix) + "$")
    rotated = sorted(q for q in p.parent.glob(f"{p.stem}.*{p.suffix}") if pattern.match(q.name)) \
        if p.parent.is_dir() else []
    return rotated + ([p] if p.exists() else [])


class AppendOnlyFile:
    """One live file, appended to in fsync'd batches (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, rotate_bytes: int = 0, rotate_s: float = 0.0,
                 fsync: bool = True, clock: Callable[[], float] = time.time, key: str = "sinks.urls") -> None:
        self.path = Path(path)
        self.rotate_bytes, self.rotate_s, self.fsync = rotate_bytes, rotate_s, fsync
        self.clock, self.key = clock, key
        self.repaired_bytes = 0
        self._fd = -1
        self._closed = False
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(self.key, str(self.path),
                              f"cannot open for appending ({exc.strerror}); "
                              "pick a writable path or fix its permissions") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise ConfigError(self.key, str(self.path),
                                  "another process is writing this file; give each worker its own file") from exc
            raise
        # O_APPEND writes go to the end whatever the offset, but pread/ftruncate need a readable fd
        rfd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            cut = repair_tail(rfd)
        finally:
            os.close(rfd)
        if cut:
            self.repaired_bytes += cut
            log.warning("%s ended in a torn line (%d bytes, never acknowledged); cut it off", self.path, cut)
        if created and self.fsync:
            _fsync_dir(self.path.parent)
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._started = self.clock()

    @property
    def size(self) -> int:
        return self._size

    def _due(self, incoming: int) -> bool:
        if self._size == 0:
            return False
        if self.rotate_bytes and self._size + incoming > self.rotate_bytes:
            return True
        return bool(self.rotate_s) and self.clock() - self._started >= self.rotate_s

    def rotate(self) -> Path:
        """Close the live file under a time-stamped name and start a new one."""
        target = _rotated_name(self.path, self.clock())
        os.rename(self.path, target)
        os.close(self._fd)          # also drops the lock; the new file takes it
        self._fd = -1
        self._open()
        if self.fsync:
            _fsync_dir(self.path.parent)
        log.info("rotated %s to %s", self.path, target.name)
        return target

    def append(self, lines: Sequence[bytes]) -> None:
        """Write whole lines (each ending in ``\\n``) and fsync; durable on return."""
        if self._closed:
            raise SinkError(f"{self.path} was closed; open the sink again")
        if self._fd < 0:               # a failed cut-back closed it: reopen (and repair)
            try:
                self._open()
            except ConfigError as exc:
                raise TransientSinkError(str(exc)) from exc
        data = b"".join(lines)
        if not data:
            return
        try:
            if self._due(len(data)):
                self.rotate()
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._cut_back()
            raise TransientSinkError(f"cannot append to {self.path}: {exc.strerror or exc}; "
                                     "free disk space or fix the volume, the batch is retried") from exc
        self._size += len(data)

    def _cut_back(self) -> None:
        """Undo a half-written batch so a retry starts on a line boundary."""
        if self._fd < 0:
            return
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            log.warning("could not cut %s back to %d bytes (%s); reopening it repairs the tail",
                        self.path, self._size, exc.strerror or exc)
            try:
                os.close(self._fd)
            except OSError:
                pass                   # already gone: that is why the write failed
            self._fd = -1

    def close(self) -> None:
        self._closed = True
        if self._fd >= 0:
            try:
                if self.fsync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1
