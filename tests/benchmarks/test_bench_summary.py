"""benchmarks/summary.py: results.json headlines become one table between the notes' markers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import summary  # noqa: E402

RESULTS = {
    "pipeline": {  # written last by make bench, rendered after attention (issue order)
        "command": "python benchmarks/pipeline.py --quick",
        "machine": {"date": "2026-11-24T01:02:03+00:00"},
        "headline": [
            {"name": "pipe / train", "value": 60.54, "unit": "x", "target": ">= 5x", "met": True}
        ],
    },
    "attention": {
        "command": "python benchmarks/attention.py",
        "machine": {"date": "2026-11-23T22:12:00+00:00"},
        "headline": [
            {"name": "ours / jax, T=128", "value": 1.2345, "target": "<= 1.05", "met": False},
            {"name": "ours | jax, T=4k", "value": None, "target": "<= 1.05", "met": None},
        ],
    },
    "zeta": {"command": "python benchmarks/zeta.py", "machine": {"date": "2026-01-01"}},
}
HEAD = "# Notes\n\nintro line\n\n## Benchmarks\n\n"
TAIL = "\n\n## Later section\n\nkept | as is\n"


def test_rows_are_rendered_between_the_markers_and_the_rest_is_kept(tmp_path: Path):
    results, notes = tmp_path / "results.json", tmp_path / "NOTES.md"
    results.write_text(json.dumps(RESULTS))
    notes.write_text(f"{HEAD}{summary.BEGIN}\nold table\n{summary.END}{TAIL}")
    summary.main([f"--results={results}", f"--notes={notes}"])

    text = notes.read_text()
    assert text.startswith(HEAD + summary.BEGIN + "\n") and text.endswith(summary.END + TAIL)
    block = text[len(HEAD) + len(summary.BEGIN) : -len(summary.END + TAIL)]
    assert "old table" not in block
    rows = [line for line in block.splitlines() if line.startswith("|")]
    assert rows[0] == "| benchmark | measured | target | met | date | command |"
    assert rows[2:] == [
        "| ours / jax, T=128 | 1.23 | <= 1.05 | **missed** | 2026-11-23 "
        "| `python benchmarks/attention.py` |",
        "| ours \\| jax, T=4k | - | <= 1.05 | not measured | 2026-11-23 "
        "| `python benchmarks/attention.py` |",
        "| pipe / train | 60.5x | >= 5x | met | 2026-11-24 "
        "| `python benchmarks/pipeline.py --quick` |",
        "| zeta | - | - | no headline in results.json | 2026-01-01 | `python benchmarks/zeta.py` |",
    ]

    summary.main([f"--results={results}", f"--notes={notes}"])  # idempotent
    assert notes.read_text() == text


def test_missing_markers_append_a_section_once(tmp_path: Path):
    results, notes = tmp_path / "results.json", tmp_path / "NOTES.md"
    results.write_text(json.dumps({"pipeline": RESULTS["pipeline"]}))
    notes.write_text("# Notes\n\nbody\n")
    summary.main([f"--results={results}", f"--notes={notes}"])
    first = notes.read_text()
    assert first.startswith("# Notes\n\nbody\n\n## Benchmarks\n\n" + summary.BEGIN)
    assert first.endswith(summary.END + "\n") and "| pipe / train | 60.5x |" in first
    summary.main([f"--results={results}", f"--notes={notes}"])
    assert notes.read_text() == first


def test_a_bad_headline_entry_is_a_one_line_error(tmp_path: Path):
    results, notes = tmp_path / "results.json", tmp_path / "NOTES.md"
    results.write_text(json.dumps({"decoding": {"headline": [{"name": "x", "value": 1.0}]}}))
    notes.write_text("untouched\n")
    with pytest.raises(SystemExit, match=r"\[decoding\].*lacks target, met"):
        summary.main([f"--results={results}", f"--notes={notes}"])
    assert notes.read_text() == "untouched\n"
