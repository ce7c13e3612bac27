"""Accuracy metrics on arrays: per-token accuracy (tagging) and length accuracy (NAT).

Each takes an optional boolean ``mask`` (True = counts), for example ``labels != PAD`` for
tagging or the ``valid`` rows of a padded eval batch, and returns a Python float.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _masked(pred: Any, target: Any, mask: Any | None, name: str) -> tuple[np.ndarray, ...]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"{name}: shapes differ: {pred.shape} != {target.shape}")
    mask = np.ones(pred.shape, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != pred.shape:
        raise ValueError(f"{name}: mask shape {mask.shape} != {pred.shape}")
    if not mask.any():
        raise ValueError(f"{name}: nothing to score (empty input or all-False mask)")
    return pred[mask], target[mask]


def token_accuracy(preds: Any, labels: Any, mask: Any | None = None) -> float:
    """Fraction of (unmasked) positions where ``preds == labels``; for tagging."""
    p, t = _masked(preds, labels, mask, "token_accuracy")
    return float(np.mean(p == t))


def length_accuracy(pred_lengths: Any, ref_lengths: Any, mask: Any | None = None) -> float:
    """Fraction of items whose predicted length equals the reference length (NAT)."""
    p, t = _masked(pred_lengths, ref_lengths, mask, "length_accuracy")
    return float(np.mean(p == t))


def length_mae(pred_lengths: Any, ref_lengths: Any, mask: Any | None = None) -> float:
    """Mean absolute error ``mean |pred - ref|`` of predicted lengths (NAT)."""
    p, t = _masked(pred_lengths, ref_lengths, mask, "length_mae")
    return float(np.mean(np.abs(p.astype(np.int64) - t.astype(np.int64))))
