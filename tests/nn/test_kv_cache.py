"""Claim: incremental decoding with the KV cache reproduces the full causal forward pass.

``init_cache`` + one ``decode_step`` per token gives, at every position, the logits of the
teacher-forced pass over the whole prefix, for every attention choice and every position
choice, while each step feeds exactly one new token.
"""

import jax
import numpy as np
import pytest
from flax import nnx
from nn_testing import assert_close, tiny_model, tokens

from attnlab.nn.config import ATTENTIONS, POSITIONS
from attnlab.specials import BOS

T, CACHE_LEN = 6, 8

CASES = (
    [dict(attention=a) for a in ATTENTIONS]
    + [dict(position=p) for p in POSITIONS if p != "sinusoidal"]
    + [dict(attention="local", position="alibi"), dict(attention="linear", position="rotary")]
    + [dict(norm="batch"), dict(norm="rms", norm_position="post"), dict(input="one_hot")]
)


@pytest.mark.parametrize("overrides", CASES, ids=lambda o: "-".join(map(str, o.values())))
def test_decode_steps_match_the_full_pass(overrides):
    model = tiny_model(**overrides)
    src = tokens(0, [6, 3], 6)
    targets = tokens(1, [T, T], T)
    tgt_in = np.concatenate([np.full((2, 1), BOS, np.int32), targets[:, :-1]], axis=1)
    full = model(src, tgt_in)

    cache = model.init_cache(src, CACHE_LEN)
    steps = []
    for t in range(T):
        logits, cache = model.decode_step(tgt_in[:, t], cache)
        steps.append(logits)
    assert_close(np.stack(steps, axis=1), full)
    np.testing.assert_array_equal(cache["index"], [T, T])


def test_every_cache_leaf_has_a_leading_batch_axis():
    for attention in ("softmax", "conv"):
        model = tiny_model(attention=attention)
        cache = model.init_cache(tokens(0, [4, 2, 3], 5), CACHE_LEN)
        assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(cache))


def test_decode_step_is_jittable_with_the_cache_as_a_pytree():
    model = tiny_model(attention="local", position="alibi")
    graphdef, state = nnx.split(model)
    step = jax.jit(lambda state, tok, cache: nnx.merge(graphdef, state).decode_step(tok, cache))
    src, tgt_in = tokens(0, [6, 3], 6), tokens(1, [T, T], T)
    cache = model.init_cache(src, CACHE_LEN)
    steps = []
    for t in range(T):
        logits, cache = step(state, tgt_in[:, t], cache)
        steps.append(logits)
    assert_close(np.stack(steps, axis=1), model(src, tgt_in))


def test_a_cache_longer_than_the_position_tables_is_rejected():
    with pytest.raises(ValueError, match="max_len"):
        tiny_model().init_cache(tokens(0, [3], 3), 100)
