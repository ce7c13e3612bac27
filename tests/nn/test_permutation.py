"""Claim: without positional information, self-attention is permutation-equivariant.

Permuting the tokens fed to an encoder with ``position = none`` permutes its output the same
way, for every attention that compares each query with every key through a score function
(softmax, relu, relu_over_length, sigmoid, sigmoid_minus_log_length, linear, chunked). Choices
that look at where a key sits relative to the query (a local window, a convolution) or that
add positions are not equivariant, and the property test shows it.
"""

import numpy as np
import pytest
from nn_testing import assert_close, tiny_model, tokens

from attnlab.nn.config import SCORE_FUNCTIONS

PERM = np.array([2, 5, 0, 3, 1, 4])  # moves every token away from its neighbours


def _encoder_gap(train=False, perm=PERM, **overrides):
    """Returns enc(permuted x) and permuted enc(x) for a batch of two length-6 sequences."""
    model = tiny_model(name="tagger", **overrides)
    x = tokens(0, [6, 6], 6)
    enc = model.encoder(x, train=train)
    enc_perm = model.encoder(x[:, perm], train=train)
    return np.asarray(enc_perm), np.asarray(enc)[:, perm]


@pytest.mark.parametrize("attention", [*SCORE_FUNCTIONS, "linear", "chunked"])
def test_permuting_the_input_permutes_the_encoder_output(attention):
    permuted_out, out_permuted = _encoder_gap(attention=attention, position="none")
    assert_close(permuted_out, out_permuted)


def test_batchnorm_in_training_keeps_equivariance():
    # Batch statistics are sums over positions, which a permutation does not change.
    permuted_out, out_permuted = _encoder_gap(train=True, norm="batch", position="none")
    assert_close(permuted_out, out_permuted)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention="conv", position="none"),
        dict(attention="local", local_window=1, position="none"),
        dict(attention="softmax", position="sinusoidal"),
        dict(attention="softmax", position="rotary"),
    ],
)
def test_local_windows_convolutions_and_positions_break_equivariance(overrides):
    permuted_out, out_permuted = _encoder_gap(**overrides)
    assert np.abs(permuted_out - out_permuted).max() > 1e-3


REVERSAL = np.arange(6)[::-1]


def test_alibi_encoder_cannot_tell_left_from_right():
    """ALiBi's encoder bias -m |i - j| depends on distance only, and reversing a sequence keeps
    every distance: reversing the input reverses the output exactly. So an ALiBi encoder knows
    how far apart tokens are but not their order (why it fails the position sweep's reverse
    task). Any other permutation changes distances, and the absolute and rotary signals do see
    the reversal."""
    assert_close(*_encoder_gap(perm=REVERSAL, position="alibi"))
    permuted_out, out_permuted = _encoder_gap(position="alibi")
    assert np.abs(permuted_out - out_permuted).max() > 1e-3
    for position in ("sinusoidal", "learned", "rotary"):
        permuted_out, out_permuted = _encoder_gap(perm=REVERSAL, position=position)
        assert np.abs(permuted_out - out_permuted).max() > 1e-3, position
