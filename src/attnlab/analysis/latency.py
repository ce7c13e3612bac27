"""Latency against output length: where NAT's parallelism starts to pay.

An AT model emits one token per decoder call, so its time grows with the output length; a
one-pass NAT fills every position in one decoder call, so its time grows only with the cost
of that one (wider) call. ``latency_vs_length`` measures both side by side: for each output
length L and batch size B it decodes the same B random sources of length L (on ``reverse``,
the output has length L too) with every system, interleaved (``interleaved_times``), and
reports the median time per sequence, ``latency_ms = median(call time) / B``.

Each system is also checked on what it produced: ``mean_output_length`` (tokens before EOS)
and, when the expected outputs are given, ``exact`` (the fraction of sequences decoded
exactly right), so that speed is compared at equal quality.

``benchmarks/decoding.py`` writes the same measurement into ``benchmarks/results.json``
(``decoding_vs_length``); ``experiments/at_vs_nat.py`` (``synthetic,long``) draws it in its
report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from attnlab.analysis.systems import SYSTEMS, Decoder, make_decoder, strip
from attnlab.data.builders.synthetic_seq2seq import target_of
from attnlab.specials import NUM_SPECIALS


def interleaved_times(
    contenders: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    min_seconds: float = 0.0,
    max_repeats: int = 200,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, interleaved, at least ``repeats`` calls each.

    Each contender is first called ``warmup`` times (compilation, first-touch of buffers).
    Repetition r calls them in the given order when r is even and reversed when r is odd, so
    neither always runs first after the other. Repetitions go on past ``repeats`` (up to
    ``max_repeats``) until all timed calls together took ``min_seconds``, so short calls get
    more samples against the noise of a shared machine.
    """
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
    """One row per (system, output length, batch): ``latency_ms`` per sequence; see the doc.

    ``sources[L]`` holds at least ``max(batches)`` sources whose output has length L.
    ``expected(src)`` gives the right output ids (``[B, L]``) for the ``exact`` column.
    """
    rows = []
    for length, pool in sorted(sources.items()):
        for batch in batches:
            if len(pool) < batch:
                raise ValueError(
                    f"{len(pool)} sources of length {length}, fewer than batch {batch}"
                )
            src = np.ascontiguousarray(pool[:batch])
            ref = np.full((batch,), length + 1, np.int32)  # with EOS, for oracle lengths
            calls = {name: (lambda d=d, s=src, r=ref: d(s, r)[0]) for name, d in decoders.items()}
            times = interleaved_times(calls, repeats, min_seconds=min_seconds)
            for name, decode in decoders.items():
                hyps = [strip(row) for row in np.asarray(decode(src, ref)[0])]
                row = {
                    "system": name,
                    "output_length": int(length),
                    "batch": int(batch),
                    "latency_ms": 1000.0 * float(np.median(times[name])) / batch,
                    "mean_output_length": float(np.mean([len(h) for h in hyps])),
                }
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
    """``latency_vs_length`` for every system of ``systems``, on random sources of each
    length of ``config.latency_lengths``; on the synthetic tasks each row also says how many
    outputs were exactly right.

    ``fresh`` (untrained models, for timing only): the AT systems emit exactly the
    reference length and ``length_pred`` takes the reference length (``oracle_length``), as
    an untrained model would stop anywhere; no exactness is reported."""
    lengths = [int(n) for n in config.latency_lengths]
    batch_sizes = [int(b) for b in config.latency_batches]
    sources = {
        n: random_sources(len(info.src_vocab), n, max(batch_sizes), seed=config.seed)
        for n in lengths
    }
    decoders = {}
    for name in systems:
        key, method, rescorer = SYSTEMS[name]
        decoders[name] = make_decoder(
            models[key],
            "oracle_length" if fresh and method == "length_pred" else method,
            max_len=max(lengths) + 1,
            length_penalty=config.at.length_penalty,
            force_lengths=fresh,
            rescorer=models[rescorer] if rescorer else None,
        )
    expected = None
    if config.at.data.name == "synthetic_seq2seq" and not fresh:
        task, src_vocab, tgt_vocab = config.at.data.synthetic_task, info.src_vocab, info.tgt_vocab

        def expected(src: np.ndarray) -> np.ndarray:
            return np.asarray(
                [tgt_vocab.encode(target_of(task, src_vocab.decode(row))) for row in src]
            )

    logging.info("timing %d systems at output lengths %s", len(decoders), lengths)
    return latency_vs_length(
        decoders,
        sources,
        batches=batch_sizes,
        expected=expected,
        repeats=repeats,
        min_seconds=min_seconds,
    )


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """Adds ``speedup_vs_at_greedy`` and ``speedup_vs_at_beam4`` (batch-1 latency ratios) to
    every row, for each base system present."""
    by_name = {r["system"]: r for r in rows}
    for base, key in (("at_greedy", "speedup_vs_at_greedy"), ("at_beam4", "speedup_vs_at_beam4")):
        if base not in by_name:
            continue
        for row in rows:
            row[key] = by_name[base]["latency_ms_b1"] / row["latency_ms_b1"]
