"""The model precisions a user may choose: torch-free, so the config tools check them without loading torch."""
from __future__ import annotations

__all__ = ["PRECISIONS"]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
