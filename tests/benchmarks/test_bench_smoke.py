"""Smoke tests of the benchmark scripts: each main runs at toy sizes and writes its section.

Times are not checked (they are noise at these sizes); the structure of the output is, and so
are the properties the figures rest on: the two contenders compute the same gradients, the
merge-writer keeps other sections, and XLA's memory analysis sees the O(T^2) scores of dense
attention that chunked attention avoids.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import attention, common, long_sequences  # noqa: E402


def test_write_section_keeps_the_other_sections(tmp_path: Path):
    path = tmp_path / "results.json"
    common.write_section("a", {"x": 1}, path)
    common.write_section("b", {"y": 2}, path)
    common.write_section("a", {"x": 3}, path)
    assert json.loads(path.read_text()) == {"a": {"x": 3}, "b": {"y": 2}}


def test_interleaved_times_alternate_the_order():
    calls: list[str] = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    times = common.interleaved_times(contenders, repeats=4, warmup=1)
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert {name: len(ts) for name, ts in times.items()} == {"a": 4, "b": 4}
    ratio = common.paired_ratio([2.0, 4.0, 6.0], [1.0, 1.0, 2.0])
    assert ratio["median"] == pytest.approx(3.0)


def test_short_calls_get_more_repetitions_up_to_min_seconds():
    contenders = {"a": lambda: time.sleep(0.01), "b": lambda: None}
    times = common.interleaved_times(contenders, repeats=1, warmup=0, min_seconds=0.05)
    assert 2 <= len(times["a"]) == len(times["b"]) <= 5  # each repetition takes >= 0.01 s
    assert sum(times["a"]) + sum(times["b"]) >= 0.05
    capped = common.interleaved_times(contenders, repeats=1, warmup=0, min_seconds=9, max_repeats=3)
    assert len(capped["a"]) == 3


def test_attention_main_at_toy_sizes(tmp_path: Path):
    results = tmp_path / "results.json"
    common.write_section("other", {"kept": True}, results)
    argv = ["--lengths=8,16", "--tokens=32", "--heads=2", "--head_dim=4", "--repeats=2"]
    argv += ["--min_seconds=0"]
    section = attention.main([*argv, f"--results={results}"])

    written = json.loads(results.read_text())
    assert written["other"] == {"kept": True}
    assert written["attention"] == json.loads(json.dumps(section))
    assert section["command"].startswith("python benchmarks/attention.py --lengths=8,16 ")
    assert [(row["T"], row["B"]) for row in section["rows"]] == [(8, 4), (16, 2)]
    for row in section["rows"]:
        assert row["max_grad_diff"] < 1e-5  # ours and jax compute the same gradients
        assert row["ratio_q25"] <= row["ratio"] <= row["ratio_q75"]
        assert row["met"] == (row["ratio"] <= attention.TARGET_RATIO)
    assert section["met"] == all(row["met"] for row in section["rows"])


def test_long_sequences_main_at_toy_sizes(tmp_path: Path):
    results = tmp_path / "results.json"
    argv = ["--lengths=32,64", "--heads=2", "--head_dim=4", "--query_chunk=8", "--key_chunk=8"]
    argv += [
        "--repeats=2",
        "--min_seconds=0",
        "--max_timed_T=32",
        "--memory_target_T=64",
        "--time_target_T=32",
    ]
    section = long_sequences.main([*argv, f"--results={results}"])

    assert json.loads(results.read_text())["long_sequences"] == json.loads(json.dumps(section))
    timed, untimed = section["rows"]
    assert timed["max_grad_diff"] < 1e-5  # chunked and dense compute the same gradients
    assert timed["time_ratio"] is not None and untimed["time_ratio"] is None
    # Dense scratch grows as T^2 (at least the [1, 2, T, T] float32 weights), chunked does not.
    for row in section["rows"]:
        assert row["dense_temp_mib"] >= common.mib(2 * row["T"] ** 2 * 4)
        assert row["memory_ratio"] == pytest.approx(row["dense_temp_mib"] / row["chunked_temp_mib"])
    assert untimed["memory_ratio"] > timed["memory_ratio"]
    memory, time = section["targets"]["memory"], section["targets"]["time"]
    assert memory["figure"] == untimed["memory_ratio"]
    assert memory["met"] == (memory["figure"] >= long_sequences.MEMORY_TARGET)
    assert time["figure"] == timed["time_ratio"] and isinstance(time["met"], bool)
    assert np.isfinite(timed["chunked_s"]) and np.isfinite(timed["dense_s"])
