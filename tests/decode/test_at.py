"""AT decoding of a Seq2Seq: the KV cache changes the cost, never the output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from decode_testing import random_sources, tiny_model
from flax import nnx

from attnlab.decode.at import at_decode, at_log_prob, at_scorer, at_search

PAD, BOS, EOS, MASK = 0, 1, 2, 4
MAX_LEN = 10


def tiny_seq2seq(seed=0, **overrides):
    return tiny_model("seq2seq", seed, max_len=MAX_LEN, **overrides)


def sources(seed, lengths, width=7):
    return jnp.asarray(random_sources(seed, lengths, width))


# Every test decodes 4 sources of width 7 with these settings, so compilations are shared.
SETTINGS = {
    "greedy": dict(method="greedy", max_len=MAX_LEN, length_penalty=0.6),
    "beam": dict(method="beam", beam_size=3, max_len=MAX_LEN, length_penalty=0.6),
}


def lp(length, alpha):
    return ((5 + length) / 6) ** alpha


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_cached_and_uncached_decoding_give_identical_outputs(method):
    model, src = tiny_seq2seq(), sources(0, [3, 7, 1, 5])
    cached, cached_scores = at_search(model, src, use_cache=True, **SETTINGS[method])
    uncached, uncached_scores = at_search(model, src, use_cache=False, **SETTINGS[method])
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_allclose(cached_scores, uncached_scores, rtol=1e-5, atol=1e-5)


def test_greedy_equals_stepwise_argmax_of_the_full_forward_pass():
    # Reference: no cache, no search code, just model(src, [BOS] + prefix) at every step (the
    # prefix right-padded to a fixed width, so one compiled forward pass serves every step).
    model, src = tiny_seq2seq(seed=1), sources(1, [4, 2, 6, 3])
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, s, t: nnx.merge(graphdef, state)(s, t))
    tokens = np.asarray(at_decode(model, src, **SETTINGS["greedy"]))
    for b in range(src.shape[0]):
        prefix = [BOS]
        while len(prefix) <= MAX_LEN:
            padded = jnp.asarray([prefix + [PAD] * (MAX_LEN - len(prefix))])
            logits = np.array(forward(state, src[b : b + 1], padded)[0, len(prefix) - 1])
            logits[[PAD, BOS, MASK]] = -np.inf  # never valid targets
            prefix.append(int(np.argmax(logits)))
            if prefix[-1] == EOS:
                break
        out = prefix[1:]
        assert tokens[b].tolist() == out + [PAD] * (MAX_LEN - len(out))


def test_beam_score_is_the_teacher_forced_log_prob_with_the_gnmt_penalty():
    model, src = tiny_seq2seq(seed=2), sources(2, [5, 3, 7, 2])
    tokens, scores = at_search(model, src, **SETTINGS["beam"])
    lengths = np.sum(np.asarray(tokens) != PAD, axis=1)
    expected = np.asarray(at_log_prob(model, src, tokens)) / lp(lengths, 0.6)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    # at_scorer (the NAT length-beam rescorer) ranks by the same normalized score.
    rescored = at_scorer(model, length_penalty=0.6)(src, tokens)
    np.testing.assert_allclose(rescored, scores, rtol=1e-4, atol=1e-5)


def test_repeated_calls_do_not_recompile(compilations):
    kw = SETTINGS["beam"]
    models = [tiny_seq2seq(seed=4), tiny_seq2seq(seed=4), tiny_seq2seq(seed=5)]
    inputs = [sources(4, [3, 3, 1, 2]), sources(5, [2, 6, 6, 6]), sources(6, [1, 4, 7, 5])]
    at_decode(models[0], inputs[0], **kw)
    # New sources of the same shape, and new weights of the same structure.
    with compilations() as events:
        at_decode(models[1], inputs[1], **kw)
        at_decode(models[2], inputs[2], **kw)
    assert events == []
    with compilations() as events:  # the check can fail: another source width compiles
        at_decode(models[2], sources(6, [1, 4, 7, 5], width=9), **kw)
    assert events


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="valid: greedy, beam"):
        at_decode(tiny_seq2seq(), sources(0, [2]), method="sample", max_len=4)
