"""Claims about BatchNorm inside the models.

- Training normalizes with the statistics of the batch's real (non-PAD) positions and moves
  the running statistics towards them; eval uses the running statistics.
- So in eval one example's output does not depend on the rest of the batch, and in training
  it does; the running statistics change in training only.
- Padding never contributes: whatever sits at PAD positions leaves the statistics and the
  outputs at real positions unchanged.
"""

import jax
import numpy as np
from flax import nnx
from nn_testing import assert_close, leaves_differ, tiny_model, tokens

from attnlab.nn.layers import BatchNorm


def test_training_uses_masked_batch_statistics_and_updates_running_ones():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32) * 3 + 1
    valid = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    bn = BatchNorm(4, eps=1e-6, momentum=0.9)
    y = np.asarray(bn(x, valid=valid, train=True))
    real = x[valid]  # [8, 4]
    mean, var = real.mean(0), real.var(0)
    assert_close(y[valid], (real - mean) / np.sqrt(var + 1e-6), atol=1e-4)
    assert_close(bn.mean[...], 0.1 * mean)
    assert_close(bn.var[...], 0.9 + 0.1 * var)

    y_eval = np.asarray(bn(x, valid=valid, train=False))
    assert_close(y_eval, (x - 0.1 * mean) / np.sqrt(0.9 + 0.1 * var + 1e-6), atol=1e-4)


def _batch_stats(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))


def test_eval_output_is_per_example_and_train_output_is_not():
    model = tiny_model(name="tagger", norm="batch")
    # Give the running statistics non-trivial values first.
    model(tokens(9, [6, 4], 6), train=True)
    a, b, c = tokens(0, [6], 6), tokens(1, [6], 6), tokens(2, [6], 6) * 0 + 7
    eval_ab = model(np.concatenate([a, b]), train=False)
    eval_ac = model(np.concatenate([a, c]), train=False)
    assert_close(eval_ab[0], eval_ac[0])
    train_ab = model(np.concatenate([a, b]), train=True)
    train_ac = model(np.concatenate([a, c]), train=True)
    assert np.abs(np.asarray(train_ab[0]) - np.asarray(train_ac[0])).max() > 1e-3


def test_running_statistics_change_in_training_only():
    model = tiny_model(norm="batch")
    src, tgt = tokens(0, [6, 4], 6), tokens(1, [5, 5], 5)
    before = _batch_stats(model)
    model(src, tgt, train=False)
    assert not leaves_differ(before, _batch_stats(model))
    model(src, tgt, train=True)
    after = _batch_stats(model)
    assert len(jax.tree.leaves(after)) > 0
    assert all(leaves_differ(x, y) for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_padding_contributes_nothing_to_statistics_or_real_outputs():
    model = tiny_model(name="tagger", norm="batch", position="learned")
    other = nnx.clone(model)
    # Change what every PAD position feeds the encoder: the PAD row of the embedding table.
    table = other.encoder.embedder.tokens.embed.embedding
    table[...] = table[...].at[0].set(10.0)
    x = tokens(0, [6, 3, 4], 6)
    valid = x != 0
    out, out_other = model(x, train=True), other(x, train=True)
    assert_close(np.asarray(out)[valid], np.asarray(out_other)[valid], atol=1e-5)
    for s, t in zip(jax.tree.leaves(_batch_stats(model)), jax.tree.leaves(_batch_stats(other))):
        assert_close(s, t)
    # Not vacuous: the PAD positions themselves did see the change.
    assert np.abs(np.asarray(out)[~valid] - np.asarray(out_other)[~valid]).max() > 1e-3
