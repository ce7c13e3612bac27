"""Claims about the bootstrap intervals."""

import numpy as np
import pytest
import sacrebleu

from attnlab.analysis.stats import bleu_ci, bootstrap_ci, rate, rate_stats


def test_interval_contains_the_point_estimate_and_matches_the_binomial_width():
    rng = np.random.default_rng(0)
    errors = (rng.random(400) < 0.25).astype(float)
    stats = rate_stats(errors, np.ones_like(errors))
    point = rate(stats.sum(0))
    low, high = bootstrap_ci(stats, rate, num_samples=2000, seed=1)
    assert low <= point <= high
    # The normal approximation of a binomial proportion gives the same width within 15%.
    width = 2 * 1.96 * np.sqrt(point * (1 - point) / len(errors))
    assert high - low == pytest.approx(width, rel=0.15)


def test_interval_is_deterministic_given_the_seed_and_collapses_without_variance():
    zero = rate_stats(np.zeros(50), np.ones(50))
    assert bootstrap_ci(zero, rate, seed=3) == (0.0, 0.0)
    some = rate_stats(np.random.default_rng(0).random(50), np.ones(50))
    assert bootstrap_ci(some, rate, seed=3) == bootstrap_ci(some, rate, seed=3)
    assert bootstrap_ci(some, rate, seed=3) != bootstrap_ci(some, rate, seed=4)


def test_bleu_statistics_reaggregate_to_sacrebleus_corpus_score():
    rng = np.random.default_rng(0)
    words = "a b c d e f g".split()
    refs = [" ".join(rng.choice(words, size=6)) for _ in range(60)]
    hyps = [" ".join(r.split()[:4] + list(rng.choice(words, size=2))) for r in refs]
    point = sacrebleu.corpus_bleu(hyps, [refs]).score
    low, high = bleu_ci(hyps, refs, num_samples=300)
    assert low <= point <= high and high - low > 0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci(np.zeros((0, 2)), rate)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.ones((3, 2)), rate, confidence=1.5)


def test_the_paired_wer_difference_is_the_difference_of_wers_and_cancels_shared_errors():
    """Two systems wrong on the same 300 hard words of 1000, one of them also on 30 more: the
    difference is the two WERs' difference (metrics.wer); its paired interval excludes 0
    (no word favours the other system) and is far narrower than the unpaired width that the
    two WER intervals side by side would give; identical outputs give exactly 0."""
    from attnlab.analysis.scoring import paired_wer_difference
    from attnlab.metrics import wer

    refs = [[["P", str(i)]] for i in range(1000)]
    base = [["X"] if i < 300 else ["P", str(i)] for i in range(1000)]
    hyps = [["X"] if i < 330 else ["P", str(i)] for i in range(1000)]
    diff, (low, high) = paired_wer_difference(hyps, base, refs, bootstrap_samples=2000, seed=1)
    assert diff == pytest.approx(wer(hyps, refs) - wer(base, refs)) == pytest.approx(0.03)
    assert 0.0 < low <= diff <= high
    unpaired = 2 * 1.96 * np.sqrt(0.3 * 0.7 / 1000 + 0.33 * 0.67 / 1000)
    assert high - low < unpaired / 2
    assert paired_wer_difference(base, base, refs, seed=1) == (0.0, (0.0, 0.0))
