"""BLEU and chrF are sacrebleu's own numbers, for any reference layout we accept."""

from itertools import zip_longest

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.metrics import corpus_bleu, corpus_chrf

WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", ".", "Cat"]
sentence = st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join)


@st.composite
def corpus(draw, multi: bool):
    n = draw(st.integers(1, 6))
    hyps = draw(st.lists(sentence, min_size=n, max_size=n))
    if multi:  # a varying number of references per item
        refs = draw(st.lists(st.lists(sentence, min_size=1, max_size=3), min_size=n, max_size=n))
    else:
        refs = draw(st.lists(sentence, min_size=n, max_size=n))
    return hyps, refs


def _streams(refs):
    """sacrebleu's layout, built here independently: transpose, fill the gaps with None."""
    per_item = [[r] if isinstance(r, str) else r for r in refs]
    return [list(s) for s in zip_longest(*per_item, fillvalue=None)]


@settings(max_examples=25)
@given(corpus(multi=False))
def test_single_reference_scores_equal_sacrebleu(data):
    hyps, refs = data
    assert corpus_bleu(hyps, refs) == sacrebleu.corpus_bleu(hyps, [refs]).score
    assert corpus_chrf(hyps, refs) == sacrebleu.corpus_chrf(hyps, [refs]).score


@settings(max_examples=25)
@given(corpus(multi=True))
def test_multi_reference_scores_equal_sacrebleu(data):
    hyps, refs = data
    streams = _streams(refs)
    assert corpus_bleu(hyps, refs) == sacrebleu.corpus_bleu(hyps, streams).score
    assert corpus_chrf(hyps, refs) == sacrebleu.corpus_chrf(hyps, streams).score


@settings(max_examples=10)
@given(corpus(multi=True))
def test_reference_order_within_an_item_does_not_matter(data):
    hyps, refs = data
    flipped = [list(reversed(r)) for r in refs]
    assert corpus_bleu(hyps, flipped) == pytest.approx(corpus_bleu(hyps, refs))
    assert corpus_chrf(hyps, flipped) == pytest.approx(corpus_chrf(hyps, refs))


def test_known_values():
    ref = "the cat sat on the mat ."
    assert corpus_bleu([ref], [ref]) == pytest.approx(100.0)
    assert corpus_chrf([ref], [[ref, "a dog"]]) == pytest.approx(100.0)
    # An empty hypothesis scores 0 and does not crash.
    assert corpus_bleu([""], [ref]) == 0.0
    assert corpus_chrf([""], [ref]) == 0.0
    # The second reference rescues the hypothesis.
    assert corpus_bleu(["a dog ran on the mat"], [[ref, "a dog ran on the mat"]]) == pytest.approx(
        100.0
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no reference"):
        corpus_bleu(["a"], [[]])
    with pytest.raises(ValueError, match="empty corpus"):
        corpus_chrf([], [])
    with pytest.raises(ValueError, match="not a single string"):
        corpus_bleu("a b", "a b")
