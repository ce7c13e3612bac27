"""Claims about the CTC helpers (ops/ctc.py), against brute force over every frame labelling.

Every function is exercised under ``jax.jit``; the blank is never id 0 here.
"""

from __future__ import annotations

import functools
import itertools

import jax
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops import ctc

T, V = 5, 3  # V^T = 243 frame labellings per example

# blank_id and pad_id may be traced, so each function compiles once for all blanks tried.
collapse = jax.jit(ctc.ctc_collapse)
best_alignment = jax.jit(ctc.ctc_best_alignment)
beam_search = jax.jit(ctc.ctc_prefix_beam_search, static_argnames=("beam_size",))
greedy = jax.jit(ctc.ctc_greedy)


def collapse_reference(labels, blank: int) -> tuple[int, ...]:
    return tuple(k for k, _ in itertools.groupby(labels) if k != blank)


def random_logprobs(seed: int, batch: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(batch, T, V)) * 1.5
    return (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(np.float32)


@functools.cache
def labellings(frames: int, blank: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Every labelling of ``frames`` frames [V^frames, frames] and the output each gives."""
    every = np.array(list(itertools.product(range(V), repeat=frames))).reshape(-1, frames)
    return every, [collapse_reference(p, blank) for p in every]


def path_logprobs(lp: np.ndarray, frames: int, blank: int) -> np.ndarray:
    """log P(pi) of each labelling of ``labellings(frames, blank)``."""
    every, _ = labellings(frames, blank)
    return lp[np.arange(frames), every].astype(np.float64).sum(axis=1)


def sequence_logprobs(lp: np.ndarray, frames: int, blank: int) -> dict[tuple, float]:
    """log P(y) for every output y: logaddexp over the labellings of ``frames`` that give y."""
    out: dict[tuple, float] = {}
    for y, score in zip(labellings(frames, blank)[1], path_logprobs(lp, frames, blank)):
        out[y] = np.logaddexp(out.get(y, -np.inf), score)
    return out


optax_ctc_loss = jax.jit(optax.ctc_loss, static_argnames=("blank_id",))


def optax_logprobs(lp, frames, ys, blank) -> np.ndarray:
    """-optax.ctc_loss of output ``ys[b]`` on the first ``frames[b]`` frames of ``lp [B, T, V]``."""
    labels = np.array([list(y) + [0] * (T + 1 - len(y)) for y in ys])
    label_pad = np.arange(T + 1)[None] >= np.array([len(y) for y in ys])[:, None]
    logit_pad = np.arange(T)[None] >= np.asarray(frames)[:, None]
    loss = optax_ctc_loss(
        lp, logit_pad.astype(np.float32), labels, label_pad.astype(np.float32), blank_id=blank
    )
    return -np.asarray(loss, np.float64)


@pytest.mark.parametrize(
    "frames, length, want",
    [
        ([1, 1, 2, 2, 2, 3], 6, [1, 2, 3]),  # repeats merge
        ([7, 1, 7, 7, 2, 7], 6, [1, 2]),  # blanks drop
        ([7, 7, 7, 7, 7, 7], 6, []),  # all blanks
        ([1, 7, 1, 1, 7, 1], 6, [1, 1, 1]),  # a blank between repeats keeps both
        ([3, 3, 4, 4, 5, 6], 3, [3, 4]),  # frames past the length are ignored
        ([0, 0, 7, 0, 2, 2], 6, [0, 0, 2]),  # id 0 is an ordinary token here
    ],
)
def test_collapse_merges_repeats_then_drops_blanks(frames, length, want):
    out, n = collapse(np.array([frames]), np.array([length]), blank_id=7, pad_id=-1)
    assert int(n[0]) == len(want)
    assert list(np.asarray(out[0])) == want + [-1] * (6 - len(want))


@given(st.integers(0, 2**16), st.integers(0, V - 1))
def test_collapse_equals_groupby_on_random_frames(seed, blank):
    rng = np.random.default_rng(seed)
    labels, lengths = rng.integers(0, V, size=(8, T)), rng.integers(0, T + 1, size=8)
    out, n = map(np.asarray, collapse(labels, lengths, blank_id=blank, pad_id=-1))
    for b in range(8):
        want = collapse_reference(labels[b, : lengths[b]], blank)
        assert n[b] == len(want) and tuple(out[b, : n[b]]) == want
        assert np.all(out[b, n[b] :] == -1)


def test_impossible_is_exactly_when_no_labelling_gives_the_target_and_optax_blows_up():
    blank, frames = 2, 4
    targets = [y for n in range(0, 6) for y in itertools.product(range(2), repeat=n)]
    reachable = {
        collapse_reference(labels, blank) for labels in itertools.product(range(V), repeat=frames)
    }
    padded = np.array([list(y) + [0] * (6 - len(y)) for y in targets])
    lengths = np.array([len(y) for y in targets])
    impossible = np.asarray(ctc.ctc_impossible(np.full(len(targets), frames), padded, lengths))
    assert list(impossible) == [y not in reachable for y in targets]
    # What the mask is for: optax gives those examples a huge (about 1e5) loss, not an error.
    lp = random_logprobs(0, 1).repeat(len(targets), 0)
    loss = -optax_logprobs(lp, np.full(len(targets), frames), targets, blank)
    assert np.all(np.isfinite(loss)) and list(loss > 1e4) == list(impossible)


@given(st.integers(0, 2**16), st.integers(0, V - 1))
def test_best_alignment_is_the_brute_force_best_labelling(seed, blank):
    rng = np.random.default_rng(seed)
    tokens = [c for c in range(V) if c != blank]
    cases = [(f, n) for f in range(1, T + 1) for n in range(0, 4)]
    lp = random_logprobs(seed, len(cases))
    frames = np.array([f for f, _ in cases])
    target_lengths = np.array([n for _, n in cases])
    targets = rng.choice(tokens, size=(len(cases), 3))
    labels, scores = map(
        np.asarray, best_alignment(lp, frames, targets, target_lengths, blank_id=blank, pad_id=-1)
    )
    total = optax_logprobs(lp, frames, [targets[b, :n] for b, (_, n) in enumerate(cases)], blank)
    for b, (f, n) in enumerate(cases):
        y = tuple(targets[b, :n])
        every, outputs = labellings(f, blank)
        fits = np.array([out == y for out in outputs])
        if not fits.any():
            assert scores[b] == -np.inf and np.all(labels[b] == -1)
            continue
        path_scores = np.where(fits, path_logprobs(lp[b], f, blank), -np.inf)
        best = np.argmax(path_scores)
        assert tuple(labels[b, :f]) == tuple(every[best]) and np.all(labels[b, f:] == -1)
        assert collapse_reference(labels[b, :f], blank) == y
        np.testing.assert_allclose(scores[b], path_scores[best], rtol=1e-5, atol=1e-5)
        # One path is at most the sum over paths: log P(pi*) <= log P(y) = -ctc_loss.
        assert scores[b] <= total[b] + 1e-5


@given(st.integers(0, 2**16), st.integers(0, V - 1))
def test_wide_prefix_beam_search_ranks_every_output_exactly(seed, blank):
    # 2 tokens, at most 5 frames: 63 outputs, so a beam of 63 never prunes.
    lengths = np.array([T, 3, 1, 4])
    lp = random_logprobs(seed, len(lengths))
    seqs, seq_lengths, scores = map(
        np.asarray, beam_search(lp, lengths, beam_size=63, blank_id=blank, pad_id=-1)
    )
    tops = []
    for b, f in enumerate(lengths):
        exact = sorted(sequence_logprobs(lp[b], f, blank).items(), key=lambda kv: -kv[1])
        tops.append(exact[0])
        assert np.all(scores[b, len(exact) :] == -np.inf)
        got = [tuple(seqs[b, k, : seq_lengths[b, k]]) for k in range(len(exact))]
        assert got == [y for y, _ in exact]
        np.testing.assert_allclose(scores[b, : len(exact)], [s for _, s in exact], atol=1e-5)
        assert np.all(seqs[b][np.arange(T)[None] >= seq_lengths[b][:, None]] == -1)
    # The brute force agrees with optax on the best output of each example.
    np.testing.assert_allclose(
        optax_logprobs(lp, lengths, [y for y, _ in tops], blank), [s for _, s in tops], atol=1e-5
    )


@given(st.integers(0, 2**16), st.integers(0, V - 1), st.sampled_from([1, 3]))
def test_narrow_beam_scores_are_sorted_distinct_lower_bounds(seed, blank, beam_size):
    lengths = np.array([T, T, 2])
    lp = random_logprobs(seed, len(lengths))
    seqs, seq_lengths, scores = map(
        np.asarray, beam_search(lp, lengths, beam_size=beam_size, blank_id=blank)
    )
    for b, f in enumerate(lengths):
        exact = sequence_logprobs(lp[b], f, blank)
        live = scores[b] > -np.inf
        assert np.all(np.diff(scores[b][live]) <= 0)
        found = [tuple(seqs[b, k, : seq_lengths[b, k]]) for k in np.flatnonzero(live)]
        assert len(set(found)) == len(found)
        for y, s in zip(found, scores[b][live]):
            assert s <= exact[y] + 1e-5


def test_beam_search_of_a_peaked_canvas_is_the_greedy_collapse():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, V, size=(6, T))
    lp = np.log(np.full((6, T, V), 1e-4))
    np.put_along_axis(lp, labels[..., None], np.log(1 - 2e-4), axis=2)
    lengths = np.array([T, T, T, 3, 2, 1])
    want, want_n = greedy(lp, lengths, blank_id=1)
    seqs, seq_lengths, _ = beam_search(lp, lengths, beam_size=3, blank_id=1)
    np.testing.assert_array_equal(seq_lengths[:, 0], want_n)
    np.testing.assert_array_equal(seqs[:, 0], want)
    for b in range(6):
        assert tuple(np.asarray(want[b, : want_n[b]])) == collapse_reference(
            labels[b, : lengths[b]], 1
        )


def test_beam_size_below_one_is_a_value_error():
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        ctc.ctc_prefix_beam_search(np.zeros((1, 2, 3)), np.array([2]), 0, blank_id=1)
