"""Host-to-device copies through pinned, double-buffered staging memory.

A copy from pageable memory is synchronous and goes through a driver bounce
buffer; from page-locked (pinned) memory it is a DMA that can run on its own
stream while the previous batch computes.  Two buffers alternate so the host
can fill one while the other is still being read by the GPU; an event per
buffer says when it may be overwritten.  On CPU the array is used in place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["HostStager", "Staged"]


@dataclass(slots=True)
class _Slot:
    buffer: torch.Tensor | None = None
    event: Any = None        # torch.cuda.Event recorded after the last copy out of buffer


@dataclass(frozen=True, slots=True)
class Staged:
    """A tensor on the device and the event that marks its copy done (None on CPU)."""

    tensor: torch.Tensor
    ready: Any = None

    def wait(self, stream: Any = None) -> torch.Tensor:
        """Make ``stream`` (default: the current one) wait for the copy; returns the tensor."""
        if self.ready is not None:
            stream = stream if stream is not None else torch.cuda.current_stream(self.tensor.device)
            stream.wait_event(self.ready)
            # the tensor was allocated on the copy stream: tell the allocator it is used here too
            self.tensor.record_stream(stream)
        return self.tensor


class HostStager:
    """Uploads numpy arrays to one device; one stager per model instance (not thread-safe)."""

    def __init__(self, device: torch.device, *, pinned: bool = True, buffers: int = 2) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.pinned = pinned and self.cuda
        self._slots = [_Slot() for _ in range(max(1, buffers))]
        self._next = 0
        self.copy_stream = torch.cuda.Stream(device) if self.pinned else None

    def upload(self, array: np.ndarray) -> Staged:
        array = np.ascontiguousarray(array)
        source = torch.from_numpy(array)
        if not self.cuda:
            return Staged(source)
        if not self.pinned:
            return Staged(source.to(self.device))          # pageable: synchronous copy
        slot = self._slots[self._next]
        self._next = (self._next + 1) % len(self._slots)
        if slot.event is not None:
            slot.event.synchronize()                       # the GPU is done reading this buffer
        numel = source.numel()
        if slot.buffer is None or slot.buffer.dtype != source.dtype or slot.buffer.numel() < numel:
            slot.buffer = torch.empty(max(numel, 1), dtype=source.dtype, pin_memory=True)
        host = slot.buffer[:numel].view(source.shape)
        host.copy_(source)
        with torch.cuda.stream(self.copy_stream):
            tensor = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        slot.event = event
        return Staged(tensor, event)
