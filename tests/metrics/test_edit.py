"""WER and PER as in G2P evaluation: the closest of several references counts."""

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.metrics import edit_distance, exact_match, per, wer


def levenshtein(a, b):
    """Plain recursive Levenshtein distance, the textbook definition."""
    a, b = tuple(a), tuple(b)

    @cache
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


phonemes = st.lists(st.sampled_from(["AH0", "K", "T", "S", "IY1"]), max_size=6)


@st.composite
def g2p_corpus(draw):
    n = draw(st.integers(1, 6))
    hyps = draw(st.lists(phonemes, min_size=n, max_size=n))
    refs = draw(st.lists(st.lists(phonemes, min_size=1, max_size=3), min_size=n, max_size=n))
    return hyps, refs


@settings(max_examples=40)
@given(phonemes, phonemes)
def test_edit_distance_is_levenshtein(a, b):
    assert edit_distance(a, b) == levenshtein(a, b)


@settings(max_examples=40)
@given(g2p_corpus())
def test_per_is_total_edits_to_the_closest_reference_over_its_length(data):
    hyps, refs = data
    edits = length = 0
    for h, rs in zip(hyps, refs):
        dists = [levenshtein(h, r) for r in rs]
        best = dists.index(min(dists))  # ties go to the first reference
        edits += dists[best]
        length += len(rs[best])
    if length == 0:
        with pytest.raises(ValueError, match="undefined"):
            per(hyps, refs)
    else:
        assert per(hyps, refs) == pytest.approx(edits / length)


@settings(max_examples=40)
@given(g2p_corpus())
def test_wer_counts_words_matching_no_reference(data):
    hyps, refs = data
    wrong = [min(levenshtein(h, r) for r in rs) > 0 for h, rs in zip(hyps, refs)]
    assert wer(hyps, refs) == pytest.approx(np.mean(wrong))
    assert exact_match(hyps, refs) == pytest.approx(1 - np.mean(wrong))


def test_single_references_and_token_ids_are_accepted():
    hyps = [[5, 6, 7], [8]]
    refs = [[5, 6, 8], [8]]  # one reference per item
    assert per(hyps, refs) == pytest.approx(1 / 4)
    assert wer(hyps, refs) == pytest.approx(1 / 2)
    assert per([np.array([5, 6])], [np.array([5, 6])]) == 0.0
    # [] is one empty reference, [[]] a set holding one.
    assert wer([[]], [[]]) == 0.0 and wer([[]], [[[]]]) == 0.0


def test_closest_reference_is_used_for_both_numerator_and_denominator():
    # Distances 1 (to a length-2 ref) and 2 (to a length-8 ref): the closer one counts.
    refs = [[["K", "T"], ["K", "AH0", "T", "S", "S", "S", "S", "S"]]]
    assert per([["K", "AH0", "T"]], refs) == pytest.approx(1 / 2)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="token list"):
        per(["KAT"], [["K", "AE", "T"]])
    with pytest.raises(ValueError, match="differ in length"):
        wer([["K"]], [])
    with pytest.raises(ValueError, match="empty corpus"):
        wer([], [])
