"""Claims about layer, RMS and batch normalization (ops/norms.py), checked against flax nnx."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.ops import norms

EPS = st.sampled_from([1e-6, 1e-5, 1e-3])
# A few [batch, length, features] shapes (each new shape costs flax a compile).
SHAPES = st.sampled_from([(1, 1, 3), (2, 3, 8), (3, 4, 3)])


def _data(seed: int, shape: tuple[int, ...]):
    """x with a non-zero mean and spread, and random scale / bias for the last axis."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=2.0, scale=1.5, size=shape)
    scale, bias = rng.normal(size=(2, shape[-1]))
    return tuple(jnp.asarray(a, jnp.float32) for a in (x, scale, bias))


@functools.partial(jax.jit, static_argnames="eps")
def _ours_and_flax_layer_norm(x, scale, bias, eps):
    ref = nnx.LayerNorm(x.shape[-1], epsilon=eps, rngs=nnx.Rngs(0))
    ref.scale[...] = scale
    ref.bias[...] = bias
    return norms.layer_norm(x, scale, bias, eps=eps), ref(x)


@functools.partial(jax.jit, static_argnames="eps")
def _ours_and_flax_rms_norm(x, scale, eps):
    ref = nnx.RMSNorm(x.shape[-1], epsilon=eps, rngs=nnx.Rngs(0))
    ref.scale[...] = scale
    return norms.rms_norm(x, scale, eps=eps), ref(x)


@settings(max_examples=6, deadline=None)
@given(SHAPES, st.integers(0, 999), EPS)
def test_layer_norm_equals_flax_layer_norm(shape, seed, eps):
    x, scale, bias = _data(seed, shape)
    ours, ref = _ours_and_flax_layer_norm(x, scale, bias, eps)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@settings(max_examples=6, deadline=None)
@given(SHAPES, st.integers(0, 999), EPS)
def test_rms_norm_equals_flax_rms_norm(shape, seed, eps):
    x, scale, _ = _data(seed, shape)
    ours, ref = _ours_and_flax_rms_norm(x, scale, eps)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


SHAPE = (3, 5, 4)  # [batch, length, features]: one shape, so flax compiles once


def _flax_batch_norm(scale, bias, mean, var, *, momentum, eps):
    ref = nnx.BatchNorm(SHAPE[-1], momentum=momentum, epsilon=eps, rngs=nnx.Rngs(0))
    ref.scale[...] = scale
    ref.bias[...] = bias
    ref.mean[...] = mean
    ref.var[...] = var
    return ref


@pytest.mark.parametrize("masked", [False, True])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 999), momentum=st.sampled_from([0.9, 0.99]), eps=EPS)
def test_batch_norm_equals_flax_batch_norm_in_training_and_eval(seed, momentum, eps, masked):
    """Outputs and the updated running statistics, over two training steps, then eval."""
    x1, scale, bias = _data(seed, SHAPE)
    x2, mean, var = _data(seed + 1, SHAPE)
    var = jnp.abs(var) + 0.5
    mask = np.random.default_rng(seed).random(SHAPE[:-1]) < 0.7 if masked else None
    mask = None if mask is None else jnp.asarray(mask).at[0, 0].set(True)
    ref = _flax_batch_norm(scale, bias, mean, var, momentum=momentum, eps=eps)
    flax_mask = None if mask is None else mask[..., None]
    for x in (x1, x2):
        y, mean, var = norms.batch_norm(
            x, scale, bias, mean, var, training=True, momentum=momentum, eps=eps, mask=mask
        )
        np.testing.assert_allclose(y, ref(x, use_running_average=False, mask=flax_mask), atol=1e-5)
        np.testing.assert_allclose(mean, ref.mean[...], atol=1e-5)
        np.testing.assert_allclose(var, ref.var[...], atol=1e-5)
    y, new_mean, new_var = norms.batch_norm(
        x1, scale, bias, mean, var, training=False, momentum=momentum, eps=eps
    )
    np.testing.assert_allclose(y, ref(x1, use_running_average=True), atol=1e-5)
    assert new_mean is mean and new_var is var


@settings(max_examples=3, deadline=None)
@given(st.integers(0, 999))
def test_masked_batch_norm_equals_batch_norm_on_the_valid_positions_only(seed):
    x, scale, bias = _data(seed, SHAPE)
    mean, var = jnp.zeros(SHAPE[-1]), jnp.ones(SHAPE[-1])
    mask = np.random.default_rng(seed).random(SHAPE[:-1]) < 0.5
    mask[0, 0] = True
    y, m, v = norms.batch_norm(
        x, scale, bias, mean, var, training=True, momentum=0.9, eps=1e-5, mask=jnp.asarray(mask)
    )
    valid = x[np.nonzero(mask)]  # [N, F]: only the real positions
    y_ref, m_ref, v_ref = norms.batch_norm(
        valid, scale, bias, mean, var, training=True, momentum=0.9, eps=1e-5
    )
    np.testing.assert_allclose(y[np.nonzero(mask)], y_ref, atol=1e-5)
    np.testing.assert_allclose(m, m_ref, atol=1e-6)
    np.testing.assert_allclose(v, v_ref, atol=1e-6)
    # And the brute-force statistics themselves (biased variance).
    np.testing.assert_allclose((m - 0.9 * mean) / 0.1, np.mean(valid, 0), atol=1e-5)
    np.testing.assert_allclose((v - 0.9 * var) / 0.1, np.var(valid, 0), atol=1e-5)


def test_eval_uses_running_statistics_so_one_example_is_finite_and_batch_independent():
    """The bug class of the study notes' numpy BatchNorm, which kept running statistics but
    normalized test batches with their own statistics: a single test example then became beta.
    """
    x, scale, bias = _data(0, SHAPE)
    mean = jnp.asarray([0.5, -1.0, 2.0, 0.0])  # deliberately unlike the batch statistics
    var = jnp.asarray([4.0, 0.25, 1.0, 9.0])
    kwargs = dict(momentum=0.9, eps=1e-5)
    y_eval, _, _ = norms.batch_norm(x, scale, bias, mean, var, training=False, **kwargs)
    expected = (np.asarray(x) - mean) / np.sqrt(var + 1e-5) * scale + bias
    np.testing.assert_allclose(y_eval, expected, atol=1e-5)
    y_train, _, _ = norms.batch_norm(x, scale, bias, mean, var, training=True, **kwargs)
    assert not np.allclose(y_eval, y_train, atol=1e-2)

    one = x[:1, :1]  # a single example of a single position
    y_one, _, _ = norms.batch_norm(one, scale, bias, mean, var, training=False, **kwargs)
    assert np.all(np.isfinite(y_one))
    np.testing.assert_allclose(y_one, y_eval[:1, :1], atol=1e-6)
    # With batch statistics (what the notes' code did at test time) it collapses to beta.
    y_one_batch_stats, _, _ = norms.batch_norm(one, scale, bias, mean, var, training=True, **kwargs)
    np.testing.assert_allclose(y_one_batch_stats[0, 0], bias, atol=1e-5)


def test_bad_batch_norm_arguments_are_value_errors():
    x, scale, bias = _data(0, SHAPE)
    stats = (jnp.zeros(4), jnp.ones(4))
    with pytest.raises(ValueError, match=r"x.shape\[:-1\]"):
        norms.batch_norm(
            x,
            scale,
            bias,
            *stats,
            training=True,
            momentum=0.9,
            eps=1e-5,
            mask=jnp.ones((3, 4), bool),
        )
    with pytest.raises(ValueError, match="momentum must be in"):
        norms.batch_norm(x, scale, bias, *stats, training=True, momentum=1.5, eps=1e-5)
