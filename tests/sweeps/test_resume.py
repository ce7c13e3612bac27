"""A stopped sweep resumes: finished runs are skipped, the unfinished one continues from its
checkpoint, and results.csv holds one correct row per run.

The tiny sweep of ``sweep_testing.py`` (two reverse-task runs, position none and rotary), 24
steps, on the local launcher. The sweep gets SIGTERM once the first run is done and the second
has saved a checkpoint; the running job passes it on, its trainer saves and exits, the sweep
exits 1, and the same command is run again.
"""

import csv
import json
import math
import signal
import statistics
import subprocess
import time
from pathlib import Path

import jax
from flax import nnx
from sweep_testing import NONE, ROTARY, checkpoint_steps, position_sweep_args, sweep_command

from attnlab.train import restore_model

STEPS = 24

# A save every 6 steps: four in a run (saving is most of a tiny run's time), and the stop,
# sent once the second run has saved at 6, still lands 18 steps before its end.
ARGS = position_sweep_args(STEPS, eval_every=12, checkpoint_every=6)
TIMING = ("steps_per_sec", "tokens_per_sec", "eval_seconds")


def final_records(run_dir: Path) -> tuple[dict, dict, list[dict]]:
    """The last train and eval records at the final step, read straight from metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r["step"] == STEPS]
    train = [r for r in last if "loss" in r][-1]
    evals = [r for r in last if "eval_wer" in r][-1]
    return train, evals, records


def param_count(run_dir: Path) -> int:
    model, _ = restore_model(run_dir)
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_stopped_sweep_skips_finished_runs_and_resumes_the_rest(tmp_path, sweep_env):
    workdir = tmp_path / "position"
    command = sweep_command(workdir, ARGS)
    first, second = workdir / NONE, workdir / ROTARY

    sweep = subprocess.Popen(
        command, env=sweep_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 180
    while not ((first / "done.json").exists() and checkpoint_steps(second)):
        assert sweep.poll() is None, sweep.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the first run did not finish in time"
        time.sleep(0.05)
    sweep.send_signal(signal.SIGTERM)
    stopped = sweep.communicate(timeout=120)[0]
    assert sweep.returncode == 1 and "stopped; run the same command again" in stopped
    assert not (second / "done.json").exists()
    first_done = (first / "done.json").stat().st_mtime_ns

    rerun = subprocess.run(command, env=sweep_env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"skip {NONE} (finished)" in rerun.stderr
    assert (first / "done.json").stat().st_mtime_ns == first_done
    assert (first / "train.log").read_text().count("final:") == 1  # trained once
    second_log = (second / "train.log").read_text()
    assert "on SIGTERM; checkpoint saved" in second_log  # the job passed the stop on
    assert "resumed from step" in second_log

    with (workdir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["seed"], r["model.position"]) for r in rows] == [
        ("reverse,position=none", "0", "none"),
        ("reverse,position=rotary", "0", "rotary"),
    ]
    for row, run_dir in zip(rows, (first, second), strict=True):
        assert row["status"] == "finished"
        train, evals, records = final_records(run_dir)
        for key, value in {**train, **evals}.items():
            if key not in TIMING:
                assert math.isclose(float(row[key]), value, rel_tol=0, abs_tol=0), key
        rates = [r["steps_per_sec"] for r in records if "steps_per_sec" in r]
        assert float(row["steps_per_sec"]) == statistics.median(rates)
        assert int(row["params"]) == param_count(run_dir)
    report = (workdir / "report.md").read_text()
    assert " ".join(ARGS) in report and "| rotary | 1 |" in report
    assert (workdir / "position.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
