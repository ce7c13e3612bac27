"""Latency against output length: the timing rows, the exactness check and the crossover."""

import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from attnlab.analysis import latency
from attnlab.analysis.latency import crossover, latency_vs_length, random_sources
from attnlab.analysis.systems import Timing, make_decoder
from attnlab.decode.compiled import jit_model, trim_source
from attnlab.specials import EOS, NUM_SPECIALS, PAD, strip


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


def test_side_by_side_times_every_system_in_each_pass_in_alternating_order():
    """The call order, brute-forced: warm-ups (one per source width, batch 1 and the batches),
    then per pass each system's batch-1 calls and batches, forward in even passes and
    reversed in odd ones; the figures are per pass, and a sleeping decoder's are its sleep."""
    calls = []

    def decoder(name, seconds):
        def decode(src, given):
            calls.append((name, src.shape))
            time.sleep(seconds * len(src))
            return src, None

        return decode

    singles = [(np.full((1, 3), 5), np.array([4])), (np.full((1, 3), 6), np.array([4]))]
    batches = [(np.full((4, 3), 5), np.full(4, 4), 3), (np.full((4, 5), 5), np.full(4, 6), 4)]
    timings = {
        name: Timing(decoder(name, seconds), singles, batches, "trained model")
        for name, seconds in (("slow", 0.004), ("fast", 0.001))
    }
    out = latency.side_by_side(timings, passes=3)
    warm = [(name, shape) for name in ("slow", "fast") for shape in [(1, 3), (4, 3), (4, 5)]]
    one = lambda name: [(name, (1, 3))] * 2 + [(name, (4, 3)), (name, (4, 5))]
    assert calls == warm + one("slow") + one("fast") + one("fast") + one("slow") + one(
        "slow"
    ) + one("fast")
    for name, seconds in (("slow", 0.004), ("fast", 0.001)):
        assert len(out[name]["latency_ms_b1"]) == len(out[name]["throughput_seq_s"]) == 3
        assert all(1000 * seconds <= ms < 1000 * seconds + 15 for ms in out[name]["latency_ms_b1"])
        # 7 valid rows over 8 rows of sleep
        assert all(t <= 7 / (8 * seconds) for t in out[name]["throughput_seq_s"])
    with pytest.raises(ValueError, match="timing_passes must be >= 1"):
        latency.side_by_side(timings, passes=0)


def test_speed_ratios_are_taken_pass_by_pass():
    passes = {
        "at": {"latency_ms_b1": [10.0, 12.0, 30.0], "throughput_seq_s": [100.0, 90.0, 50.0]},
        "nat": {"latency_ms_b1": [2.0, 3.0, 5.0], "throughput_seq_s": [800.0, 900.0, 200.0]},
    }
    got = latency.speed_ratios(passes, "nat", "at")
    assert got["b1"] == 5.0 and got["b1_range"] == [4.0, 6.0]  # 10/2, 12/3, 30/5
    assert got["b64"] == 8.0 and got["b64_range"] == [4.0, 10.0]  # 800/100, 900/90, 200/50
    # not the ratio of the medians (12 / 3 = 4 and 800 / 90)
    assert got["b1"] != 12.0 / 3.0


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


def _tiny_at():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "decode"))
    from decode_testing import random_sources, tiny_model

    return tiny_model("seq2seq", 3, max_len=10), random_sources(3, [3, 7, 1, 5], 20)


def _calls(model, src, eos_at, beam_size):
    """Decoder calls of a batch-1 search of ``model``, forced to EOS at ``eos_at`` (or not)."""
    run = jit_model(
        latency._search, model, beam_size=beam_size, max_len=10, length_penalty=0.6, count=True
    )
    latency._CALLS.clear()
    run(src, None if eos_at is None else np.asarray([eos_at], np.int32))
    jax.effects_barrier()
    return len(latency._CALLS)


@pytest.mark.parametrize("method", ["greedy", "beam:3"])
def test_a_forced_search_puts_the_eos_exactly_there_and_runs_that_many_steps(method):
    model, src = _tiny_at()
    decode = latency.forced_at_decoder(model, method, max_len=10, length_penalty=0.6)
    tokens = np.asarray(decode(src, np.array([1, 4, 10, 11])).tokens)
    for row, n in zip(tokens, [1, 4, 10]):
        assert row[n - 1] == EOS and EOS not in row[: n - 1] and np.all(row[n:] == PAD)
    assert EOS not in tokens[3] and PAD not in tokens[3]  # 11 > max_len: no EOS at all
    beam = 3 if method.startswith("beam") else 1
    for n in (1, 4, 10, 11):  # a forced search makes as many decoder calls (max_len at most)
        assert _calls(model, src[:1, :8], n - 1, beam) == min(n, 10)


@pytest.mark.parametrize("method", ["greedy", "beam:3"])
def test_search_steps_are_each_examples_own_decoder_calls(method):
    """What analysis.recorded times a recorded search by: the steps each example's search ran
    alone, at least its output's length (counting the EOS); greedy's are exactly that, and a
    fresh search forced there makes as many decoder calls."""
    model, src = _tiny_at()
    batches = [{"inputs": src, "valid": np.array([True, True, False, True])}]
    decode = make_decoder(model, method, max_len=10, length_penalty=0.6)
    hyps = [strip(row) for row in np.asarray(decode(src, None).tokens)[[0, 1, 3]]]
    steps = latency.search_steps(model, method, batches, hyps, max_len=10, length_penalty=0.6)
    beam = 3 if method.startswith("beam") else 1
    for row, h, n in zip(src[[0, 1, 3]], hyps, steps, strict=True):
        alone = trim_source(row[None])
        assert _calls(model, alone, None, beam) == n >= min(len(h) + 1, 10)
        assert _calls(model, alone, n - 1, beam) == n
        if beam == 1:
            assert n == min(len(h) + 1, 10)
