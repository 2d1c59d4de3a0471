"""The one error tree of sidepath.

    SidepathError
     +-- ConfigError        bad configuration or usage: exit code 2
     +-- FatalError         cannot go on (auth, bad model file, CUDA): exit code 1
     +-- MessageError       one message cannot be processed: error result + dead letter
     |    +-- BadRequest    stage "parse": not JSON, missing ids, no media
     |    +-- FetchError    stage "fetch": HTTP 404, forbidden address, too large
     |    +-- DecodeError   stage "decode": not an image, truncated video, no audio
     |    +-- ModelError    stage "infer": the model rejected this item
     +-- SinkError          a sink could not make results durable
          +-- TransientSinkError   retried with backoff while the source is paused

Every message is one line a user can act on: what is wrong, the value, the fix.
"""
from __future__ import annotations

__all__ = [
    "SidepathError", "ConfigError", "FatalError", "MessageError", "BadRequest",
    "FetchError", "DecodeError", "ModelError", "SinkError", "TransientSinkError",
]


class SidepathError(Exception):
    """Base of every error sidepath raises on purpose."""

    exit_code = 1


class ConfigError(SidepathError):
    """Bad configuration or usage; names the key, the bad value and the fix."""

    exit_code = 2

    def __init__(self, key: str, value: object, fix: str) -> None:
        self.key, self.value, self.fix = key, value, fix
        super().__init__(f"config {key}={value!r}: {fix}")


class FatalError(SidepathError):
    """The worker cannot go on; offsets stay uncommitted and it exits 1."""


class MessageError(SidepathError):
    """One message cannot be processed. ``stage`` names where it failed.

    ``str(exc)`` goes into the error result and the dead letter, which other teams read;
    ``detail`` (resolved internal addresses, configured paths) goes into the log only.
    """

    stage = "unknown"

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class BadRequest(MessageError):
    stage = "parse"


class FetchError(MessageError):
    stage = "fetch"

    def __init__(self, message: str, *, retriable: bool = False, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.retriable = retriable


class DecodeError(MessageError):
    stage = "decode"


class ModelError(MessageError):
    stage = "infer"


class SinkError(SidepathError):
    """A sink failed for good (bad row, bad schema): the rows go to the DLQ."""

    stage = "sink"


class TransientSinkError(SinkError):
    """A sink is unreachable for now (database down, broker away): retry later."""
