"""The batch-1 fast path (flat state, trimmed sources, narrow NAT canvases) changes no output.

Reference: the same decoders with ``trim=False``, which decode every source at its padded
width and every NAT length on the whole canvas, as before the fast path.
"""

import numpy as np
import pytest
from decode_testing import random_sources, tiny_model

from attnlab.analysis.systems import warm_up
from attnlab.decode import compiled
from attnlab.decode.at import at_searcher
from attnlab.nat.decoding import nat_decoder

PAD, EOS = 0, 2
MAX_LEN = 24


def tiny(name, seed, **overrides):
    return tiny_model(name, seed, max_len=MAX_LEN, **overrides)


# The recipe each strategy decodes (attnlab.nat.RECIPES).
RECIPE = {"mask_predict:3": "cmlm", "eos_cut": "eos_canvas", "ctc_beam:3": "ctc"}
RECIPE.update(dag_viterbi="dag", dag_lookahead="dag")


def sources(seed, lengths, width=20):
    return random_sources(seed, lengths, width)


def test_widths_buckets_and_trimming():
    assert compiled.widths(32) == (8, 16, 32)
    assert compiled.widths(20) == (8, 16, 20)
    assert compiled.widths(5) == (5,)
    assert [compiled.bucket(n, 20) for n in (1, 8, 9, 16, 17, 20)] == [8, 8, 16, 16, 20, 20]
    src = sources(0, [3, 9])
    assert compiled.trim_source(src).shape == (2, 16)
    np.testing.assert_array_equal(compiled.trim_source(src), src[:, :16])
    assert compiled.trim_source(np.zeros((1, 20), np.int32)).shape == (1, 8)


@pytest.mark.parametrize("method", ["greedy", "beam"])
@pytest.mark.parametrize("lengths", [[3, 7, 1, 5], [12, 2, 4, 6], [20, 1, 1, 1]])
def test_at_trimmed_sources_give_the_tokens_of_the_full_width(method, lengths):
    model, src = tiny("seq2seq", 0), sources(1, lengths)
    kw = dict(method=method, beam_size=3, max_len=10)
    fast, fast_scores = at_searcher(model, **kw)(src)
    full, full_scores = at_searcher(model, trim=False, **kw)(src)
    np.testing.assert_array_equal(fast, full)
    np.testing.assert_allclose(fast_scores, full_scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "strategy",
    ["length_pred", "length_beam:3", "oracle_length", "mask_predict:3", "eos_cut", "ctc_beam:3"]
    + ["dag_viterbi", "dag_lookahead"],
)
def test_nat_narrow_canvases_give_the_output_of_the_whole_canvas(strategy):
    recipe = RECIPE.get(strategy, "vanilla")
    overrides = {} if recipe in ("vanilla", "cmlm") else {"length_mode": "none"}
    model = tiny("nat", 1, nat_recipe=recipe, **overrides)
    src = sources(2, [3, 6, 2, 5])
    # One batch of lengths within 8, one reaching into 16 and one into the whole canvas.
    for ref in ([4, 7, 3, 8], [4, 12, 3, 8], [1, 24, 2, 2]):
        ref = np.asarray(ref, np.int32)
        fast = nat_decoder(model, strategy, max_len=MAX_LEN)(src, ref)
        full = nat_decoder(model, strategy, max_len=MAX_LEN, trim=False)(src, ref)
        # ctc and dag canvases follow the source width: compare with PAD to the same width.
        fast_tokens, full_tokens = np.asarray(fast.tokens), np.asarray(full.tokens)
        assert fast_tokens.shape[1] <= full_tokens.shape[1]
        width = ((0, 0), (0, full_tokens.shape[1] - fast_tokens.shape[1]))
        np.testing.assert_array_equal(np.pad(fast_tokens, width), full_tokens)
        np.testing.assert_array_equal(fast.lengths, full.lengths)
        np.testing.assert_allclose(fast.scores, full.scores, rtol=1e-5, atol=1e-6)


def test_warm_up_calls_once_per_source_width():
    calls = []
    pairs = [(sources(4, [n]), None) for n in (3, 5, 12, 8, 16, 9, 20)]
    warm_up(lambda src, ref: calls.append(int(np.sum(src != PAD))), pairs)
    assert calls == [3, 12, 20]  # the first source of each width: 8, 16, 20
    assert [compiled.source_width(src) for src, _ in pairs] == [8, 8, 16, 8, 16, 16, 20]
