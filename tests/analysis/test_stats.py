"""Claims about the bootstrap interval."""

import numpy as np
import pytest

from attnlab.analysis.stats import bootstrap_ci


def _mean_error(hyps, refs):
    return float(np.mean([h != r for h, r in zip(hyps, refs, strict=True)]))


def test_interval_contains_the_point_estimate_and_matches_the_binomial_width():
    rng = np.random.default_rng(0)
    refs = list(range(400))
    hyps = [r if rng.random() > 0.25 else -1 for r in refs]
    point = _mean_error(hyps, refs)
    low, high = bootstrap_ci(_mean_error, hyps, refs, num_samples=2000, seed=1)
    assert low <= point <= high
    # The normal approximation of a binomial proportion gives the same width within 15%.
    width = 2 * 1.96 * np.sqrt(point * (1 - point) / len(refs))
    assert high - low == pytest.approx(width, rel=0.15)


def test_interval_is_deterministic_given_the_seed_and_collapses_without_variance():
    refs = list(range(50))
    assert bootstrap_ci(_mean_error, refs, refs, seed=3) == (0.0, 0.0)
    hyps = [r if r % 3 else -1 for r in refs]
    assert bootstrap_ci(_mean_error, hyps, refs, seed=3) == bootstrap_ci(
        _mean_error, hyps, refs, seed=3
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(_mean_error, [1], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(_mean_error, [], [])
