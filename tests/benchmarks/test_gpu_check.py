"""``benchmarks/gpu_check.py --quick`` on CPU: every part but decoding runs and reports.

(The decoding benchmark has its own toy-size test, ``test_bench_decoding.py``; here it would
cost a minute of compiles.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "ATTNLAB_DATA_DIR": str(data_dir)}


def test_quick_gpu_check_runs_on_cpu(tmp_path: Path):
    results = tmp_path / "results.json"
    command = [sys.executable, str(SCRIPT), "--quick", f"--results={results}"]
    command += [f"--workdir={tmp_path / 'work'}", "--parts=devices,attention,train"]
    done = subprocess.run(
        command, capture_output=True, text=True, env=_env(tmp_path / "tfds"), timeout=400
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = json.loads(results.read_text())
    check = written["gpu_check"]
    assert check["backend"] == "cpu" and check["devices"][0].startswith("cpu:0")
    assert {name: part["status"] for name, part in check["parts"].items()} == {
        "devices": "ok",
        "attention": "ok",
        "train": "ok",
    }
    assert check["train"]["steps"] == 20 and check["train"]["steps_per_sec"] > 0
    assert "attention" in written  # the benchmark wrote its own section beside
    assert "all parts ok" in done.stdout


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "--parts=devices,gpu",
            "unknown --parts 'gpu'; valid: devices, attention, long_sequences, train, decoding",
        ),
        ("--part_timeout=-1", "--part_timeout must be a number of seconds >= 0, got -1.0"),
    ],
)
def test_a_bad_flag_is_one_line(tmp_path: Path, flag: str, message: str):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), flag, f"--workdir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(message)


def test_part_timeout_stops_a_part_and_reports_it(tmp_path: Path):
    # Python cannot import jax in 0.05 s, so the devices part is stopped at its limit; the
    # script still writes its section and exits 1, naming the limit.
    results = tmp_path / "results.json"
    command = [sys.executable, str(SCRIPT), f"--results={results}", f"--workdir={tmp_path}"]
    command += ["--parts=devices", "--part_timeout=0.05"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    status = json.loads(results.read_text())["gpu_check"]["parts"]["devices"]["status"]
    assert status.startswith("failed (stopped after the --part_timeout of 0.05 s")
    assert "failed: devices" in done.stdout
