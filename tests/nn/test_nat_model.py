"""Claims about the NAT model: length classes round trip, copy_source copies the source, and
copy marks tell the copies apart."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nn_testing import MAX_LEN, assert_close, tiny_model, tokens

from attnlab.nat.model import copy_indices, copy_ranks
from attnlab.specials import MASK


@pytest.mark.parametrize("length_mode", ["absolute", "offset"])
def test_length_class_of_a_target_is_where_length_log_probs_puts_it(length_mode):
    """A predictor certain of class ``length_classes(L, Lx)`` gives length L the top log-prob."""
    model = tiny_model(name="nat", length_mode=length_mode)
    predictor = model.length_predictor.classify
    predictor.kernel[...] = jnp.zeros_like(predictor.kernel[...])
    for src_len, tgt_len in [(5, 5), (3, 8), (7, 2), (1, 1), (6, MAX_LEN)]:
        src = tokens(src_len, [src_len], 8)
        cls = model.length_classes(jnp.array([tgt_len]), jnp.array([src_len]))
        predictor.bias[...] = 20.0 * jnp.eye(MAX_LEN + 1)[cls[0]]
        log_probs = np.asarray(model.length_log_probs(model.encode(src), src))
        assert log_probs.shape == (1, MAX_LEN + 1)
        assert int(log_probs.argmax()) == tgt_len
        assert_close(np.logaddexp.reduce(log_probs[0]), 0.0)


def test_offset_mode_centres_the_classes_on_the_source_length():
    model = tiny_model(name="nat", length_mode="offset")
    classes = model.length_classes(jnp.array([4, 6, 0, 40]), jnp.array([4, 4, 9, 4]))
    np.testing.assert_array_equal(classes, [MAX_LEN // 2, MAX_LEN // 2 + 2, 0, MAX_LEN])


@given(st.integers(1, 10), st.integers(1, 10))
def test_uniform_copy_maps_ends_to_ends_and_is_monotone(src_len, tgt_len):
    idx = np.asarray(copy_indices(jnp.array([src_len]), jnp.array([tgt_len]), tgt_len))[0]
    assert idx[0] == 0
    if tgt_len > 1:
        assert idx[-1] == src_len - 1
    assert np.all(np.diff(idx) >= 0) and np.all(idx < src_len)
    if src_len == tgt_len:
        np.testing.assert_array_equal(idx, np.arange(tgt_len))


def test_copy_source_feeds_the_decoder_the_copied_source_embeddings():
    model = tiny_model(name="nat", decoder_input="copy_source")
    src = tokens(0, [6, 3], 7)
    dec = np.zeros((2, 5), np.int32)
    dec[0, :5] = MASK
    dec[1, :4] = [MASK, 9, MASK, MASK]  # an observed token stays itself
    inputs = np.asarray(model.decoder_inputs(dec, src))
    src_vectors = np.asarray(model.encoder.embedder.tokens(src))
    expected = {(0, j): round(j * 5 / 4) for j in range(5)}
    expected.update({(1, j): round(j * 2 / 3) for j in (0, 2, 3)})
    for (row, j), s in expected.items():
        assert_close(inputs[row, j], src_vectors[row, s])
    assert_close(inputs[1, 1], model.decoder.embedder.tokens(jnp.array(9)))


def test_mask_input_feeds_the_mask_embedding():
    model = tiny_model(name="nat", decoder_input="mask")
    src = tokens(0, [6], 7)
    dec = np.full((1, 4), MASK, np.int32)
    inputs = np.asarray(model.decoder_inputs(dec, src))
    mask_vector = np.asarray(model.decoder.embedder.tokens(jnp.array(MASK)))
    for j in range(4):
        assert_close(inputs[0, j], mask_vector)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=6), st.integers(0, 3))
def test_copy_ranks_count_from_both_ends_of_each_run(runs, padding):
    """Brute force: the rank of each position within its block of equal source indices."""
    idx = np.concatenate([np.full(n, i) for i, n in enumerate(runs)] + [np.zeros(padding, int)])
    valid = np.arange(len(idx)) < sum(runs)
    got_start, got_end = map(np.asarray, copy_ranks(jnp.array([idx]), jnp.array([valid])))
    want_start = [
        sum(1 for k in range(j) if valid[k] and idx[k] == idx[j]) for j in range(len(idx))
    ]
    want_end = [
        sum(1 for k in range(j + 1, len(idx)) if valid[k] and idx[k] == idx[j])
        for j in range(len(idx))
    ]
    np.testing.assert_array_equal(got_start[0], np.where(valid, want_start, 0))
    np.testing.assert_array_equal(got_end[0], np.where(valid, want_end, 0))


def test_copy_marks_tell_the_copies_of_one_source_position_apart():
    """ctc, k = 3: without marks the 3 copies of a source position read one vector; with
    marks each reads its own, and the vector is the copy plus the marks of its two ranks."""
    src = tokens(1, [4, 2], 5)
    dec_plain = tiny_model(
        name="nat", nat_recipe="ctc", length_mode="none", decoder_input="copy_source"
    )
    marked = tiny_model(
        name="nat",
        nat_recipe="ctc",
        length_mode="none",
        decoder_input="copy_source",
        mark_copies=True,
    )
    assert not hasattr(dec_plain, "copy_marks")  # off by default: older checkpoints still fit
    canvas = marked.canvas_tokens(src)
    plain = np.asarray(dec_plain.decoder_inputs(canvas, src))
    inputs = np.asarray(marked.decoder_inputs(canvas, src))
    copied = np.asarray(marked.encoder.embedder.tokens(src))
    table = np.asarray(marked.copy_marks.embedding[...])
    for row, n in enumerate([4, 2]):
        idx = np.asarray(copy_indices(jnp.array([n]), jnp.array([3 * n]), 3 * n))[0]
        for s in range(n):
            js = np.flatnonzero(idx == s)
            assert len(js) >= 2
            for a in js[1:]:
                assert_close(plain[row, a], plain[row, js[0]])  # the same vector...
                assert np.abs(inputs[row, a] - inputs[row, js[0]]).max() > 1e-3  # ...told apart
            for rank, j in enumerate(js):
                want = copied[row, s] + table[rank] + table[len(js) - 1 - rank + 5]
                assert_close(inputs[row, j], want)
        assert_close(inputs[row, 3 * n :], plain[row, 3 * n :])  # PAD positions: no marks
