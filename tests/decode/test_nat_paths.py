"""The ctc and dag strategies decode what the ops decoders give on the model's own
log-probs, inside one jitted call, and lay the output out as every NAT strategy does."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from decode_testing import tiny_model

from attnlab.nat.ctc import blank_id
from attnlab.nat.dag import graph_logprobs
from attnlab.nat.decoding import nat_decoder
from attnlab.ops.ctc import ctc_greedy, ctc_prefix_beam_search
from attnlab.ops.dag import dag_greedy, dag_lookahead, dag_viterbi

PAD, BOS, EOS, MASK = 0, 1, 2, 4
SRC = np.array([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [9, 5, 6, 7, 8]], np.int32)


def model_of(recipe, seed):
    """A 1+1-layer NAT of ``recipe`` on an all-MASK canvas, twice the source wide."""
    return tiny_model(
        "nat",
        seed,
        max_len=8,
        nat_recipe=recipe,
        length_mode="none",
        upsample=2,
        decoder_input="mask",
        num_decoder_layers=1,
    )


def with_eos(tokens, lengths, width):
    """Reference layout: content tokens, EOS, PAD, ``width`` columns."""
    out = np.zeros((len(tokens), width), np.int32)
    for row, (t, n) in enumerate(zip(tokens, lengths)):
        out[row, :n], out[row, n] = t[:n], EOS
    return out


def assert_laid_out(out):
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    for row, n in zip(tokens, lengths):
        assert row[n - 1] == EOS and np.all(row[n:] == PAD)
        assert not np.isin(row[: n - 1], [PAD, BOS, EOS, MASK]).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_ctc_and_ctc_beam_decode_the_models_canvas_with_the_ops(seed):
    model = model_of("ctc", seed)
    src = jnp.asarray(SRC)
    dec = model.canvas_tokens(src)
    frames = np.asarray((dec != PAD).sum(1))
    np.testing.assert_array_equal(frames, 2 * (SRC != PAD).sum(1))
    logp = jax.nn.log_softmax(model.decode(dec, model.encode(src), src), axis=-1)
    logp = logp.at[..., jnp.array([PAD, BOS, EOS, MASK])].set(-jnp.inf)
    width = dec.shape[1] + 1
    greedy = nat_decoder(model, "ctc", trim=False)(src)
    want, n = ctc_greedy(logp, frames, blank_id(model))
    np.testing.assert_array_equal(greedy.tokens, with_eos(np.asarray(want), np.asarray(n), width))
    np.testing.assert_array_equal(greedy.lengths, np.asarray(n) + 1)
    beam = nat_decoder(model, "ctc_beam:4", trim=False)(src)
    seqs, lens, scores = ctc_prefix_beam_search(logp, frames, 4, blank_id(model))
    want = with_eos(np.asarray(seqs)[:, 0], np.asarray(lens)[:, 0], width)
    np.testing.assert_array_equal(beam.tokens, want)
    np.testing.assert_allclose(beam.scores, np.asarray(scores)[:, 0], rtol=1e-5)
    assert np.all(np.asarray(beam.scores) >= np.asarray(greedy.scores) - 1e-4)
    for out in (greedy, beam):
        assert_laid_out(out)
        assert not np.any(np.asarray(out.tokens) == blank_id(model))


@pytest.mark.parametrize("search", ["dag_greedy", "dag_lookahead", "dag_viterbi"])
def test_dag_strategies_follow_the_ops_decoders_cut_after_the_first_eos(search):
    model = model_of("dag", 0)
    src = jnp.asarray(SRC)
    dec = model.canvas_tokens(src)
    emit, trans = graph_logprobs(model, dec, model.encode(src), src)
    emit = emit.at[..., jnp.array([PAD, BOS, MASK])].set(-jnp.inf)
    op = {"dag_greedy": dag_greedy, "dag_lookahead": dag_lookahead, "dag_viterbi": dag_viterbi}
    tokens, lengths = op[search](emit, trans, (dec != PAD).sum(1))
    want_tokens, want_lengths = [], []
    for row, n in zip(np.asarray(tokens), np.asarray(lengths)):
        content = list(row[:n])
        content = content[: content.index(EOS)] if EOS in content else content
        want_tokens.append(np.array(content + [0] * (n - len(content)), np.int32))
        want_lengths.append(len(content))
    out = nat_decoder(model, search)(src)
    width = np.asarray(out.tokens).shape[1]
    want = with_eos([np.pad(t, (0, width)) for t in want_tokens], want_lengths, width)
    np.testing.assert_array_equal(out.tokens, want)
    np.testing.assert_array_equal(out.lengths, np.array(want_lengths) + 1)
    assert_laid_out(out)


def test_repeated_calls_of_a_decoder_do_not_recompile(compilations):
    model = model_of("ctc", 0)
    decode = nat_decoder(model, "ctc_beam:2")
    decode(jnp.asarray(SRC))
    with compilations() as events:
        for _ in range(2):
            decode(jnp.asarray(SRC[::-1]))
    assert events == []
