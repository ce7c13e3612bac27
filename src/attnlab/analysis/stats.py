"""Bootstrap confidence intervals for corpus-level metrics.

A corpus metric (BLEU, WER, PER) is a function of the whole test set, so its uncertainty is
estimated by resampling the test examples with replacement (Koehn 2004, "Statistical
significance tests for machine translation evaluation"): draw B resamples of the n example
indices, recompute the metric on each, and take the 2.5% and 97.5% percentiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def bootstrap_ci(
    metric: Callable[[Sequence[Any], Sequence[Any]], float],
    hyps: Sequence[Any],
    refs: Sequence[Any],
    *,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(hyps, refs)`` over resampled examples.

    Returns ``(low, high)``. Deterministic given ``seed``.
    """
    n = len(hyps)
    if n != len(refs):
        raise ValueError(f"hyps and refs differ in length: {n} != {len(refs)}")
    if n == 0:
        raise ValueError("cannot bootstrap an empty corpus")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_samples)
    for b in range(num_samples):
        idx = rng.integers(0, n, size=n)
        values[b] = metric([hyps[i] for i in idx], [refs[i] for i in idx])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)
