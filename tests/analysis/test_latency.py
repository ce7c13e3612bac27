"""Latency against output length: the timing rows, the exactness check and the crossover."""

import time

import numpy as np
import pytest

from attnlab.analysis.latency import crossover, latency_vs_length, random_sources
from attnlab.specials import EOS, NUM_SPECIALS


def _reverser(per_token_s: float, fixed_s: float):
    """A fake decoder that reverses its source, sleeping as an AT (per token) or NAT would."""

    def decode(src, ref):
        time.sleep(fixed_s + per_token_s * src.shape[1])
        out = np.concatenate([src[:, ::-1], np.full((len(src), 1), EOS)], axis=1)
        return out, None

    return decode


def test_rows_time_each_system_and_check_its_outputs():
    sources = {n: random_sources(20, n, 4, seed=1) for n in (2, 16)}
    decoders = {
        "at_like": _reverser(per_token_s=0.001, fixed_s=0.0),
        "nat_like": _reverser(per_token_s=0.0, fixed_s=0.006),
    }
    rows = latency_vs_length(
        decoders, sources, batches=(1, 4), expected=lambda s: s[:, ::-1], repeats=3
    )
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert r["exact"] == 1.0 and r["mean_output_length"] == r["output_length"]
    at16 = next(r for r in rows if r["system"] == "at_like" and r["output_length"] == 16)
    assert at16["batch"] == 1 and 14 < at16["latency_ms"] < 40  # 16 ms of sleep per call
    at16_b4 = next(
        r for r in rows if r["system"] == "at_like" and r["output_length"] == 16 and r["batch"] == 4
    )
    assert at16_b4["latency_ms"] == pytest.approx(at16["latency_ms"] / 4, rel=0.5)  # per sequence
    # The NAT-like decoder (6 ms whatever the length) overtakes the AT-like one (1 ms per
    # token) between 2 and 16 tokens.
    assert crossover(rows, "nat_like", "at_like", batch=1) == 16


def test_exact_counts_wrong_outputs():
    sources = {3: np.array([[5, 6, 7], [7, 6, 5]], np.int32)}
    copy = {"copier": lambda src, ref: (np.concatenate([src, [[EOS]] * len(src)], 1), None)}
    rows = latency_vs_length(copy, sources, batches=(2,), expected=lambda s: s[:, ::-1], repeats=1)
    assert rows[0]["exact"] == 0.0  # reversing [5, 6, 7] is not copying it


def test_crossover_needs_the_win_to_hold_at_every_longer_length():
    rows = [
        {"system": s, "output_length": n, "batch": 1, "latency_ms": ms}
        for s, n, ms in [
            ("nat", 8, 1.0), ("at", 8, 2.0),  # wins at 8 ...
            ("nat", 16, 3.0), ("at", 16, 2.5),  # ... loses at 16 ...
            ("nat", 32, 3.0), ("at", 32, 5.0),  # ... and wins from 32 on
            ("nat", 64, 3.0), ("at", 64, 9.0),
        ]
    ]  # fmt: skip
    assert crossover(rows, "nat", "at", batch=1) == 32
    assert crossover(rows, "at", "nat", batch=1) is None
    assert crossover(rows, "nat", "at", batch=64) is None


def test_random_sources_use_only_real_tokens_and_refuse_a_vocab_of_specials():
    src = random_sources(9, 50, 30, seed=0)
    assert src.shape == (30, 50) and src.min() >= NUM_SPECIALS and src.max() < 9
    assert np.array_equal(src, random_sources(9, 50, 30, seed=0))
    with pytest.raises(ValueError, match="must exceed the 5 specials"):
        random_sources(NUM_SPECIALS, 4, 1)
