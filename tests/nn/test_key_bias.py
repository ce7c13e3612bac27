"""Claim: attention has no key bias, because a key bias cannot change softmax attention.

A key bias b turns every score q.k_j into q.k_j + q.b: the same constant across a softmax row,
which the softmax removes. Its gradient is therefore exactly zero, and what a float computes
for it is rounding noise (which Adam would scale up to steps the size of the learning rate).
The query, value and output projections keep their biases.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from nn_testing import tiny_model

from attnlab.nn.attention import MultiHeadAttention
from attnlab.ops.attention import dot_product_attention


def _attention_modules(model) -> set[tuple]:
    """Paths of every ``MultiHeadAttention`` in the model, found by walking its graph."""
    return {path for path, node in nnx.iter_graph(model) if isinstance(node, MultiHeadAttention)}


def _param_tree(model) -> dict[tuple, tuple]:
    """Every parameter's path (module path + name) and shape, read from ``nnx.state``."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {tuple(path): variable.get_value().shape for path, variable in flat}


@pytest.mark.parametrize(
    "name, overrides, count",
    [
        # encoder self-attention + decoder self- and cross-attention, per layer
        ("seq2seq", dict(num_encoder_layers=2, num_decoder_layers=3), 2 + 2 * 3),
        ("nat", dict(num_encoder_layers=2, num_decoder_layers=1), 2 + 2 * 1),
        ("nat", dict(nat_recipe="dag", length_mode="none", num_decoder_layers=2), 1 + 2 * 2),
        ("tagger", dict(num_encoder_layers=3), 3),
        # conv replaces self-attention; the decoder's cross-attention stays
        ("seq2seq", dict(attention="conv"), 1),
    ],
)
def test_every_attention_layer_has_query_value_output_biases_and_no_key_bias(
    name, overrides, count
):
    model = tiny_model(name=name, **overrides)
    params = _param_tree(model)
    attention = _attention_modules(model)
    assert len(attention) == count
    d = 16  # tiny_config's d_model
    for at in attention:
        for proj in ("query", "value", "out"):
            assert params[(*at, proj, "kernel")] == (d, d), (at, proj)
            assert params[(*at, proj, "bias")] == (d,), (at, proj)
        assert params[(*at, "key", "kernel")] == (d, d), at
        assert (*at, "key", "bias") not in params, at


def test_the_dag_transition_scores_have_no_key_bias():
    """DagLinks scores q_i.k_j under a log-softmax over j: a key bias is as inert there."""
    model = tiny_model(name="nat", nat_recipe="dag", length_mode="none")
    params = _param_tree(model)
    d = 16
    assert params[("links", "query", "bias")] == (d,)
    assert params[("links", "key", "kernel")] == (d, d)
    assert ("links", "key", "bias") not in params


def _random_qkv(seed: int, batch=2, q_len=5, kv_len=7, heads=3, head_dim=4):
    rng = np.random.default_rng(seed)
    q, k, v = (
        jnp.asarray(rng.normal(size=(batch, n, heads, head_dim)), jnp.float32)
        for n in (q_len, kv_len, kv_len)
    )
    cotangent = jnp.asarray(rng.normal(size=(batch, q_len, heads, head_dim)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=(heads, head_dim)), jnp.float32)
    # Real keys: a different number per row, as with right padding.
    mask = (np.arange(kv_len)[None, :] < np.array([[kv_len], [kv_len - 3]]))[:, None, None, :]
    return q, k, v, cotangent, bias, jnp.asarray(mask)


def _bias_gradients(scores: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of <cotangent, attention output> w.r.t. an additive key bias and query bias."""
    q, k, v, cotangent, bias, mask = _random_qkv(seed)

    def output(query_bias, key_bias):
        out = dot_product_attention(q + query_bias, k + key_bias, v, mask=mask, scores=scores)
        return jnp.sum(out * cotangent)

    g_query, g_key = jax.grad(output, argnums=(0, 1))(bias, bias)
    return np.asarray(g_key), np.asarray(g_query)


@pytest.mark.parametrize("seed", range(5))
def test_the_gradient_of_softmax_attention_wrt_a_key_bias_is_zero(seed):
    g_key, g_query = _bias_gradients("softmax", seed)
    scale = np.abs(g_query).max()
    assert scale > 1e-2  # the same inputs do move the output through the query bias
    np.testing.assert_allclose(g_key, 0.0, atol=1e-6 * max(scale, 1.0))
    # And the output itself is unchanged by the key bias.
    q, k, v, _, bias, mask = _random_qkv(seed)
    np.testing.assert_allclose(
        dot_product_attention(q, k + bias, v, mask=mask),
        dot_product_attention(q, k, v, mask=mask),
        atol=1e-5,
    )


def test_without_the_softmax_a_key_bias_would_matter():
    """The zero comes from the softmax's shift invariance: relu scores feel the key bias."""
    g_key, _ = _bias_gradients("relu", 0)
    assert np.abs(g_key).max() > 1e-2
