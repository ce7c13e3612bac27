"""Smoke test of benchmarks/decoding.py: its main runs on tiny models and writes its section.

Times are noise at these sizes and are not checked; the structure is, and so are the
properties the figures rest on: cached and uncached decoding emit the same tokens, and with
fresh models the AT emits exactly the reference lengths, as NAT ``oracle_length`` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attnlab.analysis.at_vs_nat import MODELS  # noqa: E402
from benchmarks import decoding, decoding_length  # noqa: E402


def test_decoding_main_with_tiny_fresh_models(tmp_path: Path, monkeypatch):
    real = decoding.g2p_config
    data_dir = str(tmp_path / "data")
    monkeypatch.setattr(decoding, "g2p_config", lambda v: real(v + ",quick", data_dir=data_dir))

    def long_quick():
        config = decoding_length.load_config_file(decoding_length.LONG_CONFIG + ",quick")
        for key in MODELS:
            config[key].data.data_dir = data_dir
        return config

    monkeypatch.setattr(decoding_length, "long_config", long_quick)
    results = tmp_path / "results.json"
    argv = ["--positions=2,4", "--cache_len=8", "--loop_steps=2", "--decode_length=6"]
    argv += ["--words=4", "--repeats=1", "--min_seconds=0", f"--results={results}"]
    argv += ["--lengths=4", "--length_batches=1"]
    section = decoding.main(argv)

    assert json.loads(results.read_text())["decoding"] == json.loads(json.dumps(section))
    assert section["mode"].startswith("fresh models")
    assert [row["position"] for row in section["flat"]] == [2, 4]
    cache = section["cache"]
    assert cache["same_tokens"] and cache["tokens_decoded"] == 6  # EOS forbidden
    rows = {row["system"]: row for row in section["systems"]}
    assert set(rows) == {"at_greedy", "at_beam4", "nat_length_pred", "nat_oracle_length"}
    for name in ("at_greedy", "at_beam4", "nat_oracle_length"):
        assert rows[name]["mean_tokens"] == pytest.approx(section["reference_tokens_per_word"])
    assert rows["at_beam4"]["beam4_over"] == pytest.approx(1.0)
    for name, target in section["targets"].items():
        assert target["met"] in (True, False), name
    assert [entry["value"] for entry in section["headline"][:-1]] == [
        target["figure"] for target in section["targets"].values()
    ]
    # Latency against output length: every system at every length and batch, each forced
    # (fresh models) to emit exactly the reference length, so the times compare like for like.
    by_length = section["decoding_vs_length"]
    systems = decoding_length.long_config().systems.split(",")
    assert {(r["system"], r["output_length"], r["batch"]) for r in by_length} == {
        (s, 4, 1) for s in systems
    }
    for row in by_length:
        assert row["latency_ms"] > 0
        if not row["system"].startswith("nat_ctc") and "dag" not in row["system"]:
            assert row["mean_output_length"] == row["output_length"], row
    ratio = section["headline"][-1]
    assert "4 tokens, AT beam 4 / nat_" in ratio["name"] and ratio["value"] > 0
    assert len(section["dispatch"]) == 4
    parts = section["parts"]
    assert parts["output_tokens"] == pytest.approx(section["reference_tokens_per_word"] + 1)
    assert parts["bound_beam4_over_nat"] > 0 and parts["bound_free_encoders"] > 0

    # --length_only re-measures that part alone and keeps the section's other figures.
    again = ["--repeats=1", "--min_seconds=0", f"--results={results}", "--length_only"]
    updated = decoding.main([*again, "--lengths=5", "--length_batches=1"])
    assert updated["flat"] == section["flat"] and updated["cache"] == section["cache"]
    assert {r["output_length"] for r in updated["decoding_vs_length"]} == {5}
    assert "--length_only" in updated["decoding_vs_length_run"]["command"]
    names = [entry["name"] for entry in updated["headline"]]
    assert len(names) == len(section["headline"]) and "5 tokens, AT beam 4" in names[-1]
