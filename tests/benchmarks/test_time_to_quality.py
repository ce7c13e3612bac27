"""``benchmarks/time_to_quality.py``: the --quick form runs end to end against a revision and
writes the ``time_to_quality`` section of the design (DESIGN.md, benchmarks/); the full form
refuses to run without a measured threshold; the step count is read from an eval curve.

The quick run trains the tiny G2P AT of this tree and of revision 5556763 in-process (the
CTC NAT takes the same code path and doubles the time, so CI runs the AT only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import time_to_quality as ttq  # noqa: E402

MODEL_FIELDS = {"steps", "seconds_per_step", "seconds", "tokens_per_s", "ratio_vs_rev"}


def _has_revision(rev: str) -> bool:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True
    )
    return found.returncode == 0


def test_steps_to_threshold_reads_the_first_evaluation_at_or_below_it(tmp_path: Path):
    records = [
        {"step": 100, "loss": 3.0},
        {"step": 2000, "eval_wer": 0.5, "eval_loss": 1.0},
        {"step": 4000, "eval_wer": 0.3},
        {"step": 6000, "eval_wer": 0.31},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    curve = ttq.eval_curve(tmp_path)
    assert curve == [(2000, 0.5), (4000, 0.3), (6000, 0.31)]
    assert ttq.steps_to(curve, 0.3) == 4000
    assert ttq.steps_to(curve, 0.5) == 2000
    assert ttq.steps_to(curve, 0.29) is None


def test_full_form_refuses_without_a_measured_threshold(tmp_path: Path, monkeypatch):
    # Both thresholds are measured now; the refusal still guards a model added without one.
    monkeypatch.setattr(ttq, "THRESHOLD_WER", {"at": ttq.THRESHOLD_WER["at"]})
    results = tmp_path / "results.json"
    with pytest.raises(SystemExit) as error:
        ttq.main(["--at_run", str(tmp_path), "--ctc_run", str(tmp_path), "--results", str(results)])
    assert error.value.code != 0
    assert not results.exists()


@pytest.mark.skipif(not _has_revision(ttq.DEFAULT_REV), reason="revision not in this clone")
def test_quick_form_writes_the_section(tmp_path: Path):
    results = tmp_path / "results.json"
    section = ttq.main(["--quick", "--models=at", "--results", str(results)])
    assert json.loads(results.read_text())["time_to_quality"] == section
    for key in ("command", "machine", "headline", "rev", "threshold_wer", "fraction_of_peak"):
        assert key in section
    assert section["rev"] == ttq.DEFAULT_REV
    at = section["models"]["at"]
    assert MODEL_FIELDS <= set(at)
    rev = at["rev"]
    # The definitions: seconds = steps x seconds per step; ratio = the revision's / ours.
    assert at["seconds"] == pytest.approx(at["steps"] * at["seconds_per_step"])
    assert at["ratio_vs_rev"] == pytest.approx(rev["seconds"] / at["seconds"])
    # The threshold is the revision's own last WER, so the revision reaches it, and this
    # tree reached it too (the run would have stopped otherwise), within the quick steps.
    assert 0 < rev["steps"] <= ttq.QUICK_STEPS and 0 < at["steps"] <= ttq.QUICK_STEPS
    assert any(wer <= section["threshold_wer"]["at"] for _, wer in at["eval_curve"])
    assert at["tokens_per_s"] > 0 and 0 < section["fraction_of_peak"] < 1.5
    for row in section["headline"]:
        assert set(row) >= {"name", "value", "target", "met"}
        assert isinstance(row["met"], bool)
