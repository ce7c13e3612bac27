"""Decoding time: systems timed side by side (``interleaved_times``), latency against output
length (``latency_vs_length``: where NAT's parallelism starts to pay), and fresh models made to
run a recorded decode, an AT search forced to a number of decoder steps (``forced_at_decoder``)
or a length beam to given candidates (``forced_candidates_decoder``). The measurements and
why a fresh model stands in for a trained one: docs/decoding_cost.md, docs/recorded_outputs.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from attnlab.analysis.systems import (
    SYSTEMS,
    Decoded,
    Decoder,
    Timing,
    at_beam,
    make_decoder,
    valid_rows,
    warm_up,
)
from attnlab.data.builders.synthetic_seq2seq import target_of
from attnlab.decode.at import at_scorer, cached_step, uncached_step
from attnlab.decode.compiled import jit_model, trim_source
from attnlab.decode.search import beam_search, greedy_search
from attnlab.nat.decoding import pick
from attnlab.nat.vanilla import lengths_decoder
from attnlab.specials import EOS, NUM_SPECIALS, strip


def forced_eos(tokens_to_logits: Callable) -> Callable:
    """Wrap ``tokens_to_logits`` so that row b emits EOS exactly at its step ``eos_at[b]``:
    EOS gets -inf before it and every other token -inf at it, so a search stops after
    ``eos_at + 1`` steps (``max_len`` at most). Each step costs a real step plus one ``where``.
    The cache becomes ``{"inner": cache, "index": [B] step being predicted, "eos_at": [B]}``."""

    def step(tokens: jax.Array, cache: Any) -> tuple[jax.Array, Any]:
        logits, inner = tokens_to_logits(tokens, cache["inner"])
        at_eos = (cache["index"] == cache["eos_at"])[:, None]
        is_eos = jnp.arange(logits.shape[-1])[None, :] == EOS
        logits = jnp.where(jnp.where(at_eos, is_eos, ~is_eos), logits, -jnp.inf)
        return logits, {**cache, "inner": inner, "index": cache["index"] + 1}

    return step


def _search(model, src, eos_at, *, beam_size, max_len, length_penalty, count, use_cache=True):
    tokens_to_logits, cache = (cached_step if use_cache else uncached_step)(model, src, max_len)
    if eos_at is not None:
        tokens_to_logits = forced_eos(tokens_to_logits)
        cache = {"inner": cache, "index": jnp.zeros_like(eos_at), "eos_at": eos_at}
    if count:  # one host call per decoder step (search_steps)
        inner = tokens_to_logits

        def tokens_to_logits(tokens, cache):
            jax.debug.callback(lambda: _CALLS.append(1))
            return inner(tokens, cache)

    common = dict(batch_size=src.shape[0], max_len=max_len, length_penalty=length_penalty)
    if beam_size == 1:
        return greedy_search(tokens_to_logits, cache, **common)[0]
    return beam_search(tokens_to_logits, cache, beam_size=beam_size, **common)[0][:, 0]


_CALLS: list[int] = []


def _runner(model, method, *, max_len, length_penalty, count, use_cache=True) -> Callable:
    kw = dict(count=count, use_cache=bool(use_cache), length_penalty=float(length_penalty))
    return jit_model(_search, model, beam_size=at_beam(method), max_len=int(max_len), **kw)


def forced_at_decoder(
    model: nnx.Module, method: str, *, max_len: int, length_penalty: float, use_cache=True
) -> Decoder:
    """``decode(src [B, S], steps [B]) -> Decoded``: an AT search (``greedy`` or ``beam:K``)
    of ``model`` that runs ``steps[b]`` decoder steps for row b (``forced_eos``), to time an
    untrained model; its outputs are not decodings. ``use_cache=False`` re-runs the decoder
    over the whole prefix at each step (``decode.at.uncached_step``)."""
    settings = dict(max_len=max_len, length_penalty=length_penalty, use_cache=use_cache)
    run = _runner(model, method, count=False, **settings)

    def decode(src: np.ndarray, steps: np.ndarray) -> Decoded:
        eos_at = (np.maximum(np.asarray(steps), 1) - 1).astype(np.int32)
        return Decoded(jax.block_until_ready(run(trim_source(src), eos_at)), None)

    return decode


def search_steps(
    model: nnx.Module,
    method: str,
    batches: Sequence[dict[str, Any]],
    hyps: Sequence[Sequence[int]],
    *,
    max_len: int,
    length_penalty: float,
) -> list[int] | None:
    """For an AT search ``method`` (None for a NAT), the decoder steps it ran for each valid
    example of ``batches`` decoded alone: what decoding it costs. Greedy's are its output
    ``hyps`` plus the EOS (at most ``max_len``); a beam search can run past its output (its
    finished set may fill before its bound lets it stop), so its calls are counted."""
    if not at_beam(method):
        return None
    if at_beam(method) == 1:
        return [min(len(h) + 1, max_len) for h in hyps]
    run = _runner(model, method, max_len=max_len, length_penalty=length_penalty, count=True)
    steps = []
    for src in valid_rows(batches, "inputs"):
        _CALLS.clear()
        jax.block_until_ready(run(trim_source(np.asarray(src)[None]), None))
        jax.effects_barrier()
        steps.append(len(_CALLS))
    return steps


def interleaved_times(
    contenders: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    min_seconds: float = 0.0,
    max_repeats: int = 200,
) -> dict[str, list[float]]:
    """Seconds per call of each contender after ``warmup`` calls, at least ``repeats`` each.
    Repetition r calls them in order when r is even and reversed when odd; repetitions go on
    (up to ``max_repeats``) until the timed calls took ``min_seconds`` in all."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    for call in contenders.values():
        for _ in range(warmup):
            jax.block_until_ready(call())
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    rep = 0
    while rep < repeats or (rep < max_repeats and sum(map(sum, times.values())) < min_seconds):
        for name in names if rep % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            jax.block_until_ready(contenders[name]())
            times[name].append(time.perf_counter() - start)
        rep += 1
    return times


def side_by_side(timings: dict[str, Timing], passes: int) -> dict[str, dict[str, list[float]]]:
    """Every system timed in the same ``passes``: in each pass, each system in turn (in order
    in even passes, reversed in odd ones) decodes its batch-1 examples one at a time, then its
    batches. Per system and pass: ``latency_ms_b1``, the median milliseconds of the batch-1
    calls, and ``throughput_seq_s``, valid sequences over the seconds of the batches. A warm-up
    call per source width and batch size comes first (compilation excluded)."""
    if passes < 1:
        raise ValueError(f"timing_passes must be >= 1; got {passes}")
    for t in timings.values():
        warm_up(t.decode, t.singles)
        warm_up(t.decode, [(src, given) for src, given, _ in t.batches])
    names = list(timings)
    out = {name: {"latency_ms_b1": [], "throughput_seq_s": []} for name in names}
    for i in range(passes):
        for name in names if i % 2 == 0 else names[::-1]:
            t, ms = timings[name], []
            for src, given in t.singles:
                start = time.perf_counter()
                t.decode(src, given)
                ms.append(1000.0 * (time.perf_counter() - start))
            start = time.perf_counter()
            for src, given, _ in t.batches:
                t.decode(src, given)
            seconds = time.perf_counter() - start
            out[name]["latency_ms_b1"].append(float(np.median(ms)))
            out[name]["throughput_seq_s"].append(sum(n for *_, n in t.batches) / seconds)
    return out


def speed_ratios(
    passes: dict[str, dict[str, list[float]]], system: str, base: str
) -> dict[str, float | list[float]]:
    """``system`` against ``base`` pass by pass: ``b1``, base's batch-1 latency over the
    system's, and ``b64``, the system's throughput over base's; each the median over the
    passes, with ``*_range``, their smallest and largest."""
    mine, theirs = passes[system], passes[base]
    b1 = [b / s for b, s in zip(theirs["latency_ms_b1"], mine["latency_ms_b1"], strict=True)]
    tp = [s / b for b, s in zip(theirs["throughput_seq_s"], mine["throughput_seq_s"], strict=True)]
    out: dict[str, float | list[float]] = {}
    for key, ratios in (("b1", b1), ("b64", tp)):
        out[key], out[f"{key}_range"] = float(np.median(ratios)), [min(ratios), max(ratios)]
    return out


def random_sources(vocab_size: int, length: int, count: int, seed: int = 0) -> np.ndarray:
    """``[count, length]`` source ids drawn uniformly from the real (non-special) tokens."""
    if vocab_size <= NUM_SPECIALS:
        raise ValueError(f"vocab_size must exceed the {NUM_SPECIALS} specials; got {vocab_size}")
    rng = np.random.default_rng([seed, length, count])
    return rng.integers(NUM_SPECIALS, vocab_size, size=(count, length)).astype(np.int32)


def latency_vs_length(
    decoders: dict[str, Decoder],
    sources: dict[int, np.ndarray],
    *,
    batches: Sequence[int] = (1, 64),
    expected: Callable[[np.ndarray], np.ndarray] | None = None,
    repeats: int = 5,
    min_seconds: float = 0.0,
) -> list[dict[str, Any]]:
    """One row per (system, output length L, batch B): the same B sources of ``sources[L]``
    (whose outputs have length L) decoded by every system, interleaved; ``latency_ms``, the
    median call time over B; ``mean_output_length``; with ``expected(src)`` (the right output
    ids, ``[B, L]``), ``exact``, the share decoded exactly right, so speeds compare at equal
    quality."""
    rows = []
    for length, pool in sorted(sources.items()):
        for batch in batches:
            if len(pool) < batch:
                raise ValueError(f"batch {batch}, but {len(pool)} sources of length {length}")
            src = np.ascontiguousarray(pool[:batch])
            ref = np.full((batch,), length + 1, np.int32)  # with EOS, for oracle lengths
            calls = {name: (lambda d=d, s=src, r=ref: d(s, r)[0]) for name, d in decoders.items()}
            times = interleaved_times(calls, repeats, min_seconds=min_seconds)
            for name, decode in decoders.items():
                hyps = [strip(row) for row in np.asarray(decode(src, ref)[0])]
                ms = 1000.0 * float(np.median(times[name])) / batch
                row = dict(system=name, output_length=int(length), batch=int(batch), latency_ms=ms)
                row["mean_output_length"] = float(np.mean([len(h) for h in hyps]))
                if expected is not None:
                    want = np.asarray(expected(src))
                    row["exact"] = float(np.mean([h == w.tolist() for h, w in zip(hyps, want)]))
                rows.append(row)
    return rows


def crossover(rows: list[dict[str, Any]], fast: str, slow: str, batch: int) -> int | None:
    """The smallest output length at which ``fast`` has lower latency than ``slow`` at
    ``batch`` and keeps it at every longer length measured; None if it never does."""
    by = {(r["system"], r["output_length"]): r["latency_ms"] for r in rows if r["batch"] == batch}
    lengths = sorted({n for s, n in by if s == fast and (slow, n) in by})
    wins = [by[(fast, n)] < by[(slow, n)] for n in lengths]
    for i, n in enumerate(lengths):
        if all(wins[i:]):
            return n
    return None


def measure_latency_vs_length(
    config: ml_collections.ConfigDict,
    models: dict[str, nnx.Module],
    systems: list[str],
    info: Any,
    *,
    fresh: bool = False,
    repeats: int = 5,
    min_seconds: float = 0.5,
) -> list[dict[str, Any]]:
    """``latency_vs_length`` of ``systems`` on random sources of each length of
    ``config.latency_lengths``, with ``exact`` on the synthetic tasks. ``fresh`` (untrained
    models, no ``exact``): ATs run the reference length's steps, ``length_pred`` is given it."""
    lengths = [int(n) for n in config.latency_lengths]
    batch_sizes = [int(b) for b in config.latency_batches]
    sources = {
        n: random_sources(len(info.src_vocab), n, max(batch_sizes), seed=config.seed)
        for n in lengths
    }
    decoders = {}
    settings = dict(max_len=max(lengths) + 1, length_penalty=config.at.length_penalty, forced=fresh)
    for name in systems:
        key, method, rescorer = SYSTEMS[name]
        method = "oracle_length" if fresh and method == "length_pred" else method
        rescore = models[rescorer] if rescorer else None
        decoders[name] = timing_decoder(models[key], method, rescorer=rescore, **settings)
    expected = None
    if config.at.data.name == "synthetic_seq2seq" and not fresh:
        task, src_vocab, tgt_vocab = config.at.data.synthetic_task, info.src_vocab, info.tgt_vocab

        def expected(src: np.ndarray) -> np.ndarray:
            return np.asarray(
                [tgt_vocab.encode(target_of(task, src_vocab.decode(row))) for row in src]
            )

    logging.info("timing %d systems at output lengths %s", len(decoders), lengths)
    timing = dict(batches=batch_sizes, repeats=repeats, min_seconds=min_seconds)
    return latency_vs_length(decoders, sources, expected=expected, **timing)


def timing_decoder(
    model: nnx.Module, method: str, *, forced: bool, rescorer=None, **settings
) -> Decoder:
    """``make_decoder(model, method, rescorer=..., max_len=..., length_penalty=...)``, or with
    ``forced`` (an untrained model given steps or lengths): ``forced_at_decoder`` for an AT
    method, ``forced_candidates_decoder`` for a ``length_beam:K`` NAT."""
    if forced and at_beam(method):
        return forced_at_decoder(model, method, **settings)
    if forced and model.recipe.parse_strategy(method).name == "length_beam":
        penalty = settings["length_penalty"]
        score = None if rescorer is None else at_scorer(rescorer, length_penalty=penalty)
        return forced_candidates_decoder(model, max_len=settings["max_len"], rescorer=score)
    return make_decoder(model, method, rescorer=rescorer, **settings)


def forced_candidates_decoder(
    model: nnx.Module, *, max_len: int, rescorer: Callable | None
) -> Decoder:
    """A ``length_beam:K`` NAT made to decode the candidate lengths it is given, ``[B, K]``
    (the recorded ones), keeping the best by mean log-prob or by ``rescorer``."""
    given = lengths_decoder(model, max_len=max_len)

    def decode(src: np.ndarray, candidates: np.ndarray) -> Decoded:
        out = given(src, candidates)
        scores = out.scores
        if rescorer is not None:
            batch, k, _ = out.tokens.shape
            flat = jnp.repeat(trim_source(src), k, axis=0), out.tokens.reshape(batch * k, -1)
            scores = jnp.asarray(rescorer(*flat)).reshape(batch, k)
        best = pick(out.tokens, out.lengths, scores)
        return Decoded(*jax.block_until_ready((best.tokens, best.lengths)))

    return decode
