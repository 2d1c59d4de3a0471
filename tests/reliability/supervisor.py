"""A tiny process supervisor for the reliability suite, restarting like Kubernetes does.

``Supervisor(config_path, log_path=...)`` runs one ``sidepath run`` process and
restarts it whenever it exits non-zero (``kill -9`` included), after a backoff
that doubles on consecutive failures and resets once a process has stayed up
(Kubernetes' CrashLoopBackOff, scaled down to test time).  A clean exit 0 is
final (the job is done or the test stopped it).  More than ``max_restarts``
consecutive failures without a stable run is a crash loop: the supervisor
gives up and ``crash_loop`` is set, which every scenario asserts against.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.worker_util import start_worker_process

__all__ = ["Supervisor", "Exit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Exit:
    """One process ending: its exit code (negative: killed by that signal) and when (monotonic)."""

    code: int
    at: float
    ran_s: float


@dataclass
class Supervisor:
    config_path: Path
    log_path: Path
    args: tuple[str, ...] = ()
    backoff_s: float = 0.5          # first restart delay; doubles per consecutive failure
    max_backoff_s: float = 4.0
    stable_s: float = 15.0          # a process up this long resets the backoff and the failure count
    max_restarts: int = 6           # consecutive failures before it is called a crash loop
    exits: list[Exit] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    crash_loop: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._stopping = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._signalled: subprocess.Popen[bytes] | None = None
        self._failures = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"supervisor-{self.config_path.stem}",
                                        daemon=True)

    # ---- control ---------------------------------------------------------------
    def start(self) -> Supervisor:
        self._spawn()
        self._thread.start()
        return self

    @property
    def restarts(self) -> int:
        return max(0, len(self.starts) - 1)

    @property
    def pid(self) -> int | None:
        with self._lock:
            return None if self._proc is None else self._proc.pid

    def running(self) -> bool:
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> float:
        """Send ``sig`` to the current process (the watcher restarts it); returns when it died."""
        with self._lock:
            proc = self._proc
            assert proc is not None and proc.poll() is None, "no running worker to kill"
            proc.send_signal(sig)
        proc.wait(60)
        return time.monotonic()

    def wait_running(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.crash_loop:
                raise AssertionError(f"crash loop: {self.describe()}")
            if self.running():
                return
            time.sleep(0.05)
        raise TimeoutError(f"worker not running after {timeout:.0f} s: {self.describe()}")

    def signal_stop(self, sig: int = signal.SIGTERM) -> None:
        """Ask the process to stop for good (no restart) without waiting; ``stop()`` then waits.

        The signal goes once: a second SIGTERM makes a worker exit at once with code 1.
        """
        with self._lock:
            self._stopping = True
            proc = self._proc
            if proc is None or proc.poll() is not None or self._signalled is proc:
                return
            self._signalled = proc
        proc.send_signal(sig)

    def stop(self, timeout: float = 60, sig: int = signal.SIGTERM) -> int:
        """Stop for good: ``sig`` (SIGTERM = a drain) and wait; returns the exit code."""
        self.signal_stop(sig)
        with self._lock:
            proc = self._proc
        try:
            code = proc.wait(timeout) if proc is not None else 0
        except subprocess.TimeoutExpired:
            proc.kill()   # type: ignore[union-attr]
            proc.wait(30)  # type: ignore[union-attr]
            raise AssertionError(f"worker did not stop within {timeout:.0f} s after {signal.Signals(sig).name}; "
                                 f"log tail:\n{self.log_tail()}") from None
        self._done.wait(5)
        return code

    def describe(self) -> str:
        codes = [e.code for e in self.exits]
        return f"{len(self.starts)} start(s), exit codes {codes}, crash_loop={self.crash_loop}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # ---- the watcher -----------------------------------------------------------
    def _spawn(self) -> None:
        with self._lock:
            self._proc = start_worker_process(self.config_path, *self.args, log_path=self.log_path)
            self.starts.append(time.monotonic())

    def _watch(self) -> None:
        try:
            while True:
                with self._lock:
                    proc = self._proc
                assert proc is not None
                code = proc.wait()
                now = time.monotonic()
                ran = now - self.starts[-1]
                self.exits.append(Exit(code, now, ran))
                with self._lock:
                    if self._stopping or code == 0:
                        return
                    self._failures = 1 if ran >= self.stable_s else self._failures + 1
                    if self._failures > self.max_restarts:
                        self.crash_loop = True
                        log.error("crash loop: %s", self.describe())
                        return
                    delay = min(self.max_backoff_s, self.backoff_s * 2 ** (self._failures - 1))
                log.info("worker exited %d after %.1f s; restarting in %.1f s", code, ran, delay)
                time.sleep(delay)
                with self._lock:
                    if self._stopping:
                        return
                    self._spawn()
        finally:
            self._done.set()
