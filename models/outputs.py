"""From raw network outputs to the per-message JSON a user reads.

``head`` turns a batch of raw outputs into per-frame rows (softmax
probabilities, raw regression values, unit-length embeddings); ``summarise``
folds the rows of one video into one answer (mean, max, median) or lists them
per frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["AGGREGATES", "POSTPROCESS", "head", "aggregate", "summarise", "floats"]

AGGREGATES = ("mean", "max", "median", "frames")
POSTPROCESS = ("softmax", "regression", "embedding")


def head(raw: torch.Tensor, postprocess: str) -> torch.Tensor:
    """(N, ...) raw output -> (N, D) float32 rows, per frame."""
    rows = raw.float().reshape(raw.shape[0], -1)
    if postprocess == "softmax":
        return torch.softmax(rows, dim=1)
    if postprocess == "embedding":
        return torch.nn.functional.normalize(rows, dim=1)
    return rows


def aggregate(rows: np.ndarray, how: str) -> np.ndarray:
    """(n, D) -> (D,) by mean, max or median over frames."""
    if how == "mean":
        return np.asarray(rows.mean(axis=0))
    if how == "max":
        return np.asarray(rows.max(axis=0))
    if how == "median":
        return np.asarray(np.median(rows, axis=0))
    raise ValueError(f"unknown aggregate {how!r}; use one of mean, max, median")


def floats(values: np.ndarray) -> list[float]:
    """Plain floats, 7 significant digits (float32 carries no more): compact JSON."""
    return [float(f"{v:.7g}") for v in np.asarray(values, np.float64).ravel()]


def _describe(row: np.ndarray, postprocess: str, labels: Sequence[str], top_k: int,
              all_scores: bool) -> dict[str, Any]:
    if postprocess == "softmax":
        order = np.argsort(-row, kind="stable")[:max(1, top_k)]
        top = [{"index": int(i), "label": labels[i] if i < len(labels) else str(int(i)),
                "score": floats(row[i:i + 1])[0]} for i in order]
        out: dict[str, Any] = {"label": top[0]["label"], "score": top[0]["score"], "top": top}
        if all_scores:
            out["scores"] = floats(row)
        return out
    if postprocess == "embedding":
        norm = float(np.linalg.norm(row))
        unit = row / norm if norm > 0 else row     # a mean of unit vectors is shorter than 1
        return {"embedding": floats(unit), "dim": int(row.size)}
    return {"values": floats(row)}


def summarise(rows: np.ndarray, timestamps_s: Sequence[float], *, postprocess: str, how: str,
              labels: Sequence[str] = (), top_k: int = 5, all_scores: bool = False) -> dict[str, Any]:
    """The result of one video or image from its per-frame rows (n, D)."""
    n = int(rows.shape[0])
    if how == "frames":
        per_frame = []
        for i in range(n):
            t = float(timestamps_s[i]) if i < len(timestamps_s) else float(i)
            per_frame.append({"t": round(t, 3), **_describe(rows[i], postprocess, labels, top_k, all_scores)})
        return {"frames": n, "per_frame": per_frame}
    return {"frames": n, **_describe(aggregate(rows, how), postprocess, labels, top_k, all_scores)}
