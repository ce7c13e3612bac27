"""Label-smoothed masked cross-entropy and the NAT training inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.train.losses import nat_decoder_input, shift_right, smoothed_cross_entropy


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


def test_teacher_forcing_input_is_bos_then_targets_shifted():
    targets = jnp.array([[7, 8, 2, 0]])
    np.testing.assert_array_equal(shift_right(targets), [[1, 7, 8, 2]])


def test_vanilla_nat_masks_every_target_position_and_keeps_pad():
    targets = jnp.array([[7, 8, 2, 0, 0]])
    dec, loss_mask = nat_decoder_input(targets, "all", None)
    np.testing.assert_array_equal(dec, [[4, 4, 4, 0, 0]])
    np.testing.assert_array_equal(loss_mask, targets != 0)


def test_cmlm_masks_between_one_and_all_tokens_and_trains_on_masked_only():
    targets = jnp.array([[5, 6, 7, 8, 9, 2, 0, 0]] * 64)
    dec, loss_mask = nat_decoder_input(targets, "uniform", jax.random.key(0))
    counts = np.asarray(loss_mask.sum(-1))
    assert counts.min() >= 1 and counts.max() <= 6 and len(set(counts)) > 3
    np.testing.assert_array_equal(np.asarray(dec)[np.asarray(loss_mask)], 4)
    visible = ~np.asarray(loss_mask)
    np.testing.assert_array_equal(np.asarray(dec)[visible], np.asarray(targets)[visible])


def test_eos_pad_nat_is_trained_on_the_whole_canvas_including_pad():
    # tokens 7 8, EOS, then PAD: the eos_cut model must learn to emit EOS then PAD everywhere.
    targets = jnp.array([[7, 8, 2, 0, 0], [9, 2, 0, 0, 0]])
    dec, loss_mask = nat_decoder_input(targets, "all", None, canvas=True)
    np.testing.assert_array_equal(dec, np.full(targets.shape, 4))  # all MASK, no PAD hint
    assert bool(loss_mask.all())
    dec, loss_mask = nat_decoder_input(targets, "uniform", jax.random.key(0), canvas=True)
    assert bool(((dec == 4) == loss_mask).all()) and int(loss_mask.sum()) >= 2
