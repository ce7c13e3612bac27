"""Label-smoothed masked cross-entropy against optax's, and masked positions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.ops.losses import smoothed_cross_entropy


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), smoothing=st.sampled_from([0.0, 0.1, 0.3]))
def test_smoothed_ce_equals_optax_on_smoothed_targets(seed, smoothing):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    logits = jax.random.normal(k1, (3, 5, 7)) * 3
    targets = jax.random.randint(k2, (3, 5), 0, 7)
    mask = jax.random.bernoulli(k3, 0.7, (3, 5))
    loss, nll, correct = smoothed_cross_entropy(logits, targets, mask, smoothing)
    soft = optax.smooth_labels(jax.nn.one_hot(targets, 7), smoothing)
    want = optax.softmax_cross_entropy(logits, soft)
    want_nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    np.testing.assert_allclose(loss, jnp.sum(want * mask), rtol=1e-5)
    np.testing.assert_allclose(nll, jnp.sum(want_nll * mask), rtol=1e-5)
    assert correct == jnp.sum((jnp.argmax(logits, -1) == targets) & mask)


def test_masked_positions_do_not_change_the_loss():
    logits = jnp.zeros((1, 3, 4)).at[0, 0, 1].set(5.0)
    targets = jnp.array([[1, 2, 3]])
    mask = jnp.array([[True, False, False]])
    other = logits.at[0, 1:].set(100.0)
    a = smoothed_cross_entropy(logits, targets, mask, 0.1)
    b = smoothed_cross_entropy(other, targets, mask, 0.1)
    np.testing.assert_allclose(a, b)
