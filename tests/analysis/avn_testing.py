"""The quick AT-vs-NAT run shared by the two test modules (first and second edition)."""

from __future__ import annotations

import fcntl
import gzip
import json
import math
import os
import shutil
from pathlib import Path

from attnlab.analysis import recorded
from attnlab.analysis.at_vs_nat import ABLATION_MODELS, MODELS, aliases, is_distilled, run
from attnlab.analysis.systems import SYSTEMS
from attnlab.train.config import load_config_file
from attnlab.train.distill import PAIRS_FILE

# The rows the second edition (issue 17) added: every system of the deep-shallow AT or a
# frontier NAT; test_at_vs_nat.py runs the others, test_at_vs_nat_frontier.py these.
SECOND_EDITION = [
    s
    for s in SYSTEMS
    if SYSTEMS[s].model
    in ("at_ds", "nat_glat", "nat_ctc", "nat_ctc_glat", "nat_dag", "nat_dag_kd", "nat_ctc_kd")
]

# The rows the third edition (issue 37) added: the ablations' systems, checked by config in
# test_at_vs_nat_configs.py; test_at_vs_nat_frontier.py runs one of them end to end.
THIRD_EDITION = [s for s in SYSTEMS if SYSTEMS[s].model in ABLATION_MODELS]

REQUIRED = (
    "system",
    "wer",
    "per",
    "bleu",
    "chrf",
    "exact_match",
    "latency_ms_b1",
    "throughput_seq_s_b64",
    "speedup_vs_at_greedy",
    "speedup_vs_at_beam4",
    "params",
    "wrong_length",
    "wrong_same_length",
    "extra_repeats",
)


def quick_config():
    return load_config_file("experiments/configs/at_vs_nat.py:g2p,quick")


def quick_run(systems: list[str], data_dir: Path, workdir: Path, **overrides) -> list[dict]:
    """Train the quick models the ``systems`` need and decode 24 test words with each."""
    config = quick_config()
    for key in MODELS:
        config[key].data.data_dir = str(data_dir)
        config[key].data.max_source_examples = 1000
    config.systems = ",".join(systems)
    config.max_test_examples = 24
    # One batch-1 example: one source width, so one batch-1 program per system to compile
    # (three examples spanned two widths); two timing passes still give a spread.
    config.latency_examples = 1
    config.timing_passes = 2
    config.bootstrap_samples = 50
    config.update(overrides)
    return run(config, workdir)


def shared_teacher(tmp_path_factory, meanwhile=lambda: None) -> Path:
    """The quick run's AT teacher (400 steps), its distilled data, the recorded teacher
    outputs and the distilled NAT (``nat_kd``), trained once in the session: by the first
    module to need them (also across xdist workers, through a file lock in the directory the
    workers share). A module that finds another building them calls ``meanwhile`` before it
    waits. Returns the run directory."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/, above each worker's popen-gwK/
    shared = root / "avn_teacher"
    with open(root / "avn_teacher.lock", "w") as lock:  # the lock goes when the file closes
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another worker is building it
            meanwhile()
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)  # a build that failed part-way
            recorded_dir = str(shared / "run" / "recorded")
            for key in ("at", "nat_kd"):  # the teacher first: nat_kd distills from it
                got = quick_run(
                    ["nat_kd_length_pred"],
                    shared / "data",
                    shared / "run",
                    recorded=recorded_dir,
                    train_only=key,
                )
                assert got == []
            (shared / "done").touch()
    return shared / "run"


def quick_run_with_shared_teacher(
    systems: list[str], data_dir: Path, workdir: Path, tmp_path_factory, **overrides
) -> list[dict]:
    """``quick_run``, with the AT teacher, its distilled data and ``nat_kd`` copied from
    ``shared_teacher`` rather than trained again. While another module builds them, this
    one trains its models that need no teacher. The copies resume as finished runs
    (``data.data_dir`` and ``data.distill_dir`` may change on resume); the recorded teacher
    outputs come along."""
    bases = [s.partition("@")[0] for s in systems]
    needed = {key for s in bases for key in (SYSTEMS[s].model, SYSTEMS[s].rescorer) if key}

    same_as = aliases(quick_config())  # one training for models of one config: the final run
    needed |= {same_as[key] for key in needed if key in same_as}  # links them

    def train_the_others():
        for key in MODELS:
            if key in needed and key not in same_as and key != "at" and not is_distilled(key):
                assert quick_run(systems, data_dir, workdir, train_only=key, **overrides) == []

    teacher = shared_teacher(tmp_path_factory, meanwhile=train_the_others)
    copied = ["at", "distilled"] + (["nat_kd"] if "nat_kd" in needed else [])
    for name in copied:
        shutil.copytree(teacher / name, workdir / name)
    if overrides.get("recorded"):
        Path(overrides["recorded"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(teacher / "recorded" / PAIRS_FILE, overrides["recorded"])
    return quick_run(systems, data_dir, workdir, **overrides)


def check_rows(rows: list[dict], systems: list[str], workdir: Path) -> None:
    """Every system has a row, in order, with every key and finite values."""
    assert [r["system"] for r in rows] == list(systems)
    results = json.loads((workdir / "results.json").read_text())
    assert results["systems"] == json.loads(json.dumps(rows))
    for row in rows:
        for key in REQUIRED:
            assert key in row, (row["system"], key)
            if key != "system":
                assert math.isfinite(row[key]), (row["system"], key, row[key])
        if not row["model"].startswith("at"):
            assert math.isfinite(row["length_accuracy"]) and math.isfinite(row["length_mae"])


# What a recorded system's row may differ in from the run that decoded it: its timing.
TIMING = ("latency_ms_b1", "throughput_seq_s_b64", "timed", "outputs")


def timing_key(key: str) -> bool:
    return key in TIMING or key.endswith("_range") or key.startswith(("speedup_", "throughput_"))


def recorded_outputs(workdir: Path, system: str) -> recorded.Record:
    """The record of ``system`` that the run in ``workdir`` wrote, read as it is."""
    path = workdir / "recorded" / f"{system}.json.gz"
    return recorded.Record(**json.loads(gzip.decompress(path.read_bytes())))


def rerun_from_records(systems: list[str], workdir: Path, new_workdir: Path, **overrides):
    """``systems`` again in ``new_workdir`` (no checkpoints) from the records in
    ``workdir/recorded``: nothing trains, and every row equals the first run's (``workdir``'s)
    but for its timing."""
    data_dir = json.loads((workdir / "at" / "config.json").read_text())["data"]["data_dir"]
    first = json.loads((workdir / "results.json").read_text())["systems"]
    first = {r["system"]: r for r in first}
    recorded = str(workdir / "recorded")
    rows = quick_run(systems, Path(data_dir), new_workdir, recorded=recorded, **overrides)
    assert not [key for key in MODELS if (new_workdir / key).exists()]
    for row in json.loads(json.dumps(rows)):
        assert row["outputs"] == "recorded" and first[row["system"]]["outputs"] == "decoded"
        assert row["latency_ms_b1"] > 0 and row["throughput_seq_s_b64"] > 0
        same = {k: v for k, v in row.items() if not timing_key(k)}
        assert same == {k: first[row["system"]][k] for k in same}
        assert first[row["system"]]["timed"] == "trained model"
        assert row["timed"].startswith("fresh model") and row["timing_passes"] >= 2
    for name in systems:  # an AT is timed by its search's steps: at least its output lengths
        record = recorded_outputs(workdir, name)
        if record.model.startswith("at"):
            assert all(s >= n for s, n in zip(record.steps, record.output_lengths, strict=True))
        else:
            assert record.steps is None and len(record.lengths) == len(record.hyps)
    report = (new_workdir / "report.md").read_text()
    assert f"Recorded systems ({', '.join(systems)}): their outputs come from" in report
    return rows
