"""Bootstrap confidence intervals for corpus-level metrics (Koehn 2004): resample the test
examples' statistics (BLEU's n-gram counts, WER's error indicators) with replacement, sum each
resample, aggregate the sum into the metric, and take the percentiles. A resample costs a sum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sacrebleu.metrics import BLEU

from attnlab.metrics.bleu import reference_streams


def bootstrap_ci(
    stats: np.ndarray,
    aggregate: Callable[[np.ndarray], float],
    *,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``aggregate(stats[idx].sum(0))`` over
    resampled rows of ``stats`` ``[examples, statistics]``; deterministic given ``seed``."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] == 0:
        raise ValueError(f"stats must be a non-empty [examples, stats] array, got {stats.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n = stats.shape[0]
    values = np.array(
        [aggregate(stats[rng.integers(0, n, size=n)].sum(0)) for _ in range(num_samples)]
    )
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def rate_stats(errors: Sequence[float], totals: Sequence[float]) -> np.ndarray:
    """Rows ``[errors_i, total_i]`` for a rate ``sum(errors) / sum(totals)`` (WER, PER)."""
    return np.stack([np.asarray(errors, float), np.asarray(totals, float)], axis=1)


def rate(summed: np.ndarray) -> float:
    """Aggregate of ``rate_stats``: errors over totals."""
    return float(summed[0] / max(summed[1], 1e-12))


def bleu_ci(
    hyps: Sequence[str],
    refs: Sequence[str] | Sequence[Sequence[str]],
    *,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of sacreBLEU's corpus BLEU (default settings), from its statistics."""
    metric = BLEU()
    stats = np.asarray(metric._extract_corpus_statistics(list(hyps), reference_streams(refs)))

    def aggregate(summed: np.ndarray) -> float:
        return float(metric._compute_score_from_stats([int(x) for x in summed]).score)

    return bootstrap_ci(stats, aggregate, num_samples=num_samples, confidence=confidence, seed=seed)
