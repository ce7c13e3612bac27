"""Beam search returns the exact best sequences when its beam is wide enough, and keeps each
beam's cache consistent with its prefix; greedy search is what one beam finds on a confident
model.

The toy model's log-probs are a fixed random table conditioned on the position, the last token
and (through a hash) the whole prefix. The prefix reaches the model only through the cache's
token history, so a cache that is expanded or re-gathered wrongly changes the scores.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.decode.search import (
    beam_search,
    expand_to_beams,
    gather_beams,
    greedy_search,
)

PAD, BOS, EOS = 0, 1, 2
HASH = 7  # rows of the prefix-hash table


def make_params(seed, batch, max_len, vocab, eos_bias=0.0, no_eos=False, chains=False):
    """Random log-prob tables; ``chains``: after the first token, one real token may follow
    each (position, last token), so the search tree is a few chains and stays narrow."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(batch, max_len, vocab, vocab)).astype(np.float32) * 2
    mix = rng.normal(size=(batch, HASH, vocab)).astype(np.float32)
    table[..., EOS] += eos_bias
    if chains:
        keep = rng.integers(3, vocab, size=(batch, max_len, vocab))
        for tok in range(3, vocab):
            table[:, 1:, :, tok] = np.where(keep[:, 1:] == tok, table[:, 1:, :, tok], -np.inf)
    if no_eos:
        table[..., EOS] = -np.inf
    table[..., [PAD, BOS]] = -np.inf  # the toy model never emits PAD or BOS
    return table, mix


def init_cache(table, mix, max_len):
    batch = table.shape[0]
    return {
        "table": jnp.asarray(table),
        "mix": jnp.asarray(mix),
        "history": jnp.zeros((batch, max_len), jnp.int32),
        "index": jnp.zeros((batch,), jnp.int32),
    }


def tokens_to_logits(last, cache):
    rows = jnp.arange(last.shape[0])
    i = cache["index"]
    history = cache["history"].at[rows, i].set(last)
    h = jnp.sum(history * 3 ** jnp.arange(history.shape[1]), axis=1) % HASH
    logits = cache["table"][rows, i, last] + cache["mix"][rows, h]
    return logits, dict(cache, history=history, index=i + 1)


def np_log_probs(table, mix, prefix):
    """The same model in numpy, for one example; ``prefix`` starts with BOS."""
    h = sum(t * 3**j for j, t in enumerate(prefix)) % HASH
    logits = table[len(prefix) - 1, prefix[-1]] + mix[h]
    m = logits[np.isfinite(logits)].max()
    return logits - (m + np.log(np.sum(np.exp(logits - m))))


def lp(length, alpha):
    return ((5 + length) / 6) ** alpha


def enumerate_all(table, mix, max_len, alpha):
    """Every finished sequence (ending in EOS) and every unfinished one of max_len tokens."""
    finished, unfinished = [], []

    def walk(prefix, logp):
        log_probs = np_log_probs(table, mix, prefix)
        for tok in range(table.shape[-1]):
            if not np.isfinite(log_probs[tok]):
                continue
            seq, s = prefix[1:] + [tok], logp + log_probs[tok]
            if tok == EOS:
                finished.append((s / lp(len(seq), alpha), seq))
            elif len(seq) == max_len:
                unfinished.append((s / lp(max_len, alpha), seq))
            else:
                walk(prefix + [tok], s)

    walk([BOS], 0.0)
    return sorted(finished, key=lambda x: -x[0]), sorted(unfinished, key=lambda x: -x[0])


def padded(seq, max_len):
    return seq + [PAD] * (max_len - len(seq))


def teacher_forced_score(table, mix, seq, alpha):
    tokens = [t for t in seq if t != PAD]
    logp = sum(np_log_probs(table, mix, [BOS] + tokens[:j])[t] for j, t in enumerate(tokens))
    return logp / lp(len(tokens), alpha)


@functools.cache
def jitted_beam(batch, beam, max_len):
    """One compiled search per shape; alpha is traced, so changing it does not recompile."""
    return jax.jit(
        lambda c, alpha: beam_search(
            tokens_to_logits,
            c,
            batch_size=batch,
            beam_size=beam,
            max_len=max_len,
            length_penalty=alpha,
        )
    )


def run_beam(cache, *, batch, beam, max_len, alpha):
    seqs, scores = jitted_beam(batch, beam, max_len)(cache, alpha)
    return np.asarray(seqs), np.asarray(scores)


# 3 real tokens (3, 4, 5) and max_len 4: at most 3**3 = 27 live prefixes at any step.
VOCAB, MAX_LEN, WIDE = 6, 4, 27


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.5])
def test_a_wide_beam_returns_exactly_the_best_sequences_and_scores(alpha):
    batch = 2
    for seed in range(3):
        table, mix = make_params(seed, batch, MAX_LEN, VOCAB, eos_bias=seed - 1.0)
        seqs, scores = run_beam(
            init_cache(table, mix, MAX_LEN), batch=batch, beam=WIDE, max_len=MAX_LEN, alpha=alpha
        )
        for b in range(batch):
            best, _ = enumerate_all(table[b], mix[b], MAX_LEN, alpha)
            np.testing.assert_allclose(scores[b], [s for s, _ in best[:WIDE]], rtol=1e-5)
            assert seqs[b].tolist() == [padded(q, MAX_LEN) for _, q in best[:WIDE]]


def test_early_stop_is_exact_and_actually_stops():
    # Three chains (one per first token), so a beam of 3 never drops a prefix, and EOS is likely,
    # so the finished set fills after two steps. A large alpha rewards long hypotheses: a bound
    # on what live beams can still reach that ignored the longest length (dividing by
    # lp(step + 1) instead of lp(max_len)) stops too early here and misses the best ones.
    batch, max_len, beam, vocab = 2, 12, 3, 6
    steps = []

    def counting(last, cache):
        jax.debug.callback(lambda: steps.append(1))
        return tokens_to_logits(last, cache)

    search = jax.jit(
        lambda c, alpha: beam_search(
            counting, c, batch_size=batch, beam_size=beam, max_len=max_len, length_penalty=alpha
        )
    )
    stopped_early = 0
    for alpha in (2.0, 3.0):
        for seed in range(6):
            table, mix = make_params(seed, batch, max_len, vocab, eos_bias=1.5, chains=True)
            del steps[:]
            seqs, scores = search(init_cache(table, mix, max_len), alpha)
            jax.effects_barrier()
            stopped_early += len(steps) < max_len
            for b in range(batch):
                best, _ = enumerate_all(table[b], mix[b], max_len, alpha)
                np.testing.assert_allclose(scores[b], [s for s, _ in best[:beam]], rtol=1e-5)
                assert np.asarray(seqs[b]).tolist() == [padded(q, max_len) for _, q in best[:beam]]
    assert stopped_early >= 6


def test_live_beams_are_returned_when_nothing_finishes():
    batch, alpha = 2, 0.6
    table, mix = make_params(5, batch, MAX_LEN, VOCAB, no_eos=True)
    seqs, scores = run_beam(
        init_cache(table, mix, MAX_LEN), batch=batch, beam=WIDE, max_len=MAX_LEN, alpha=alpha
    )
    for b in range(batch):
        _, live = enumerate_all(table[b], mix[b], MAX_LEN, alpha)
        np.testing.assert_allclose(scores[b], [s for s, _ in live[:WIDE]], rtol=1e-5)
        assert seqs[b].tolist() == [q for _, q in live[:WIDE]]


def test_each_beam_scores_its_own_sequence_under_a_narrow_beam():
    # With a narrow beam on long sequences, beams are re-ordered and dropped at every step.
    # If any beam's cache (its token history) were not its own prefix, the model would have
    # scored a different prefix and the returned score would differ from teacher forcing.
    batch, max_len, beam, alpha = 3, 9, 3, 0.6
    table, mix = make_params(11, batch, max_len, VOCAB, eos_bias=-1.5)
    seqs, scores = run_beam(
        init_cache(table, mix, max_len), batch=batch, beam=beam, max_len=max_len, alpha=alpha
    )
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "results are sorted best first"
    for b in range(batch):
        for k in range(beam):
            seq = seqs[b, k].tolist()
            if EOS in seq:  # tokens after BOS up to EOS, then PAD
                assert all(t == PAD for t in seq[seq.index(EOS) + 1 :])
            assert scores[b, k] == pytest.approx(teacher_forced_score(table[b], mix[b], seq, alpha))


def np_greedy(table, mix, max_len):
    prefix, logp = [BOS], 0.0
    while len(prefix) <= max_len:
        log_probs = np_log_probs(table, mix, prefix)
        tok = int(np.argmax(log_probs))
        prefix, logp = prefix + [tok], logp + log_probs[tok]
        if tok == EOS:
            break
    return prefix[1:], logp


def np_best_eos_on_the_argmax_path(table, mix, max_len, alpha):
    """What one beam can find: follow the best non-EOS token at every step and keep the best
    EOS extension seen along the way (the path itself if no EOS extension is possible)."""
    prefix, logp, best = [BOS], 0.0, None
    while len(prefix) <= max_len:
        log_probs = np_log_probs(table, mix, prefix)
        if np.isfinite(log_probs[EOS]):
            cand = ((logp + log_probs[EOS]) / lp(len(prefix), alpha), prefix[1:] + [EOS])
            best = cand if best is None or cand[0] > best[0] else best
        log_probs[EOS] = -np.inf
        tok = int(np.argmax(log_probs))
        prefix, logp = prefix + [tok], logp + log_probs[tok]
    return best if best is not None else (logp / lp(max_len, alpha), prefix[1:-1])


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_one_beam_keeps_the_best_eos_extension_along_the_argmax_path(alpha):
    batch, max_len = 4, 7
    table, mix = make_params(3, batch, max_len, VOCAB, eos_bias=-1.0)
    seqs, scores = run_beam(
        init_cache(table, mix, max_len), batch=batch, beam=1, max_len=max_len, alpha=alpha
    )
    for b in range(batch):
        score, seq = np_best_eos_on_the_argmax_path(table[b], mix[b], max_len, alpha)
        assert seqs[b, 0].tolist() == padded(seq, max_len)
        assert scores[b, 0] == pytest.approx(score, rel=1e-5)


@pytest.mark.parametrize("eos_bias", [1.5, 3.0])
def test_greedy_is_stepwise_argmax_and_equals_one_beam_on_a_confident_model(eos_bias):
    # With a confident model (sharp distributions, alpha 0), no EOS the greedy path passes up
    # can outscore the one it takes, so one beam finds exactly the greedy output. (Where greedy
    # runs out of length without an EOS, one beam prefers any finished hypothesis instead.)
    batch, max_len = 4, 7
    table, mix = make_params(3, batch, max_len, VOCAB, eos_bias=eos_bias)
    table, mix = table * 8, mix * 8
    cache = init_cache(table, mix, max_len)
    g_seqs, g_scores = jax.jit(
        lambda c: greedy_search(
            tokens_to_logits, c, batch_size=batch, max_len=max_len, length_penalty=0.0
        )
    )(cache)
    for b in range(batch):
        seq, logp = np_greedy(table[b], mix[b], max_len)
        assert seq[-1] == EOS
        assert np.asarray(g_seqs[b]).tolist() == padded(seq, max_len)
        assert float(g_scores[b]) == pytest.approx(logp, rel=1e-5, abs=1e-5)
    b_seqs, b_scores = run_beam(cache, batch=batch, beam=1, max_len=max_len, alpha=0.0)
    np.testing.assert_array_equal(b_seqs[:, 0], g_seqs)
    np.testing.assert_allclose(b_scores[:, 0], g_scores, rtol=1e-6)


def test_greedy_score_uses_the_gnmt_penalty_with_the_eos_counted():
    batch, max_len, alpha = 2, 6, 0.6
    table, mix = make_params(4, batch, max_len, VOCAB, eos_bias=1.0)
    seqs, scores = greedy_search(
        tokens_to_logits,
        init_cache(table, mix, max_len),
        batch_size=batch,
        max_len=max_len,
        length_penalty=alpha,
    )
    for b in range(batch):
        seq, logp = np_greedy(table[b], mix[b], max_len)
        assert float(scores[b]) == pytest.approx(logp / lp(len(seq), alpha), rel=1e-5)


def test_cache_rows_are_expanded_per_example_and_gathered_by_parent_beam():
    batch, beam = 3, 4
    cache = {"id": jnp.arange(batch) * 10, "vec": jnp.arange(batch * 2).reshape(batch, 2)}
    expanded = expand_to_beams(cache, beam)
    # Row b * beam + k is beam k of example b.
    assert expanded["id"].tolist() == [b * 10 for b in range(batch) for _ in range(beam)]
    tagged = dict(expanded, beam=jnp.tile(jnp.arange(beam), batch))
    parents = jnp.array([[3, 3, 0, 1], [2, 1, 0, 0], [1, 2, 3, 0]])
    gathered = gather_beams(tagged, parents)
    for b in range(batch):
        for k in range(beam):
            row = b * beam + k
            assert gathered["id"][row] == b * 10  # never another example's row
            assert gathered["beam"][row] == parents[b, k]
            assert gathered["vec"][row].tolist() == cache["vec"][b].tolist()


def test_bad_sizes_are_refused():
    cache = init_cache(*make_params(0, 1, 2, VOCAB), 2)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(tokens_to_logits, cache, batch_size=1, beam_size=0, max_len=2)
    with pytest.raises(ValueError, match="max_len"):
        greedy_search(tokens_to_logits, cache, batch_size=1, max_len=0)
