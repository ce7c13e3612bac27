"""Claims about the NAT model: length classes round trip, and copy_source copies the source."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nn_testing import MAX_LEN, assert_close, tiny_model, tokens

from attnlab.nn.nat import copy_indices
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
