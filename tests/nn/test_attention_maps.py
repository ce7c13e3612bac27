"""Attention maps, as the AT-vs-NAT report (cross) and the address report (self) draw them."""

import jax.numpy as jnp
import numpy as np
from flax import nnx
from nn_testing import tiny_config

from attnlab.nn.attention import capture_cross_attention, capture_self_attention
from attnlab.train.models import build_model


def _model(name: str):
    return build_model(tiny_config(name=name, num_decoder_layers=2), rngs=nnx.Rngs(0))


def test_each_decoder_layer_gives_a_distribution_over_the_real_source_letters():
    model = _model("seq2seq")
    src = jnp.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 7]])
    tgt = jnp.array([[1, 5, 6], [1, 7, 8]])
    plain = model(src, tgt)
    out, maps = capture_cross_attention(model, model, src, tgt)
    np.testing.assert_array_equal(out, plain)  # capturing changes nothing
    assert [m.shape for m in maps] == [(2, 2, 3, 5)] * 2
    for m in maps:
        np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(m[0, :, :, 3:], 0.0)  # padding gets no weight
    assert not nnx.state(model, nnx.Intermediate)  # nothing left behind for training


def test_the_nat_decoder_is_captured_the_same_way():
    model = _model("nat")
    src = jnp.array([[5, 6, 7, 0]])
    dec = jnp.array([[4, 4, 4, 0]])
    _, maps = capture_cross_attention(model, model.decode, dec, model.encode(src), src)
    assert len(maps) == 2 and maps[0].shape == (1, 2, 4, 4)
    np.testing.assert_allclose(maps[1].sum(-1), 1.0, atol=1e-5)


def test_a_tagger_gives_one_self_attention_map_per_encoder_layer_over_real_tokens():
    model = build_model(tiny_config(name="tagger", num_encoder_layers=3), rngs=nnx.Rngs(0))
    tokens = jnp.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 7]])
    plain = model(tokens)
    out, maps = capture_self_attention(model, model, tokens)
    np.testing.assert_array_equal(out, plain)
    assert [m.shape for m in maps] == [(2, 2, 5, 5)] * 3
    for m in maps:
        np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(m[0, :, :, 3:], 0.0)
    # a seq2seq model's capture of self-attention does not mix in its cross-attention maps
    s2s = _model("seq2seq")
    _, self_maps = capture_self_attention(s2s, s2s, tokens, jnp.array([[1, 5, 6], [1, 7, 8]]))
    assert sorted({m.shape[-2:] for m in self_maps}) == [(3, 3), (5, 5)]
    assert not nnx.state(model, nnx.Intermediate)
