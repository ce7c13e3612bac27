"""Metric writers: JSON lines, TensorBoard events, and what a resumed run keeps."""

import json
import struct

import pytest
from tensorboardX.proto.event_pb2 import Event

from attnlab.train.writers import MetricWriter, progress_line, read_metrics


def _read_events(logdir):
    """(tag, step, value) of every scalar in the TFRecord event files (length-prefixed)."""
    out = []
    for path in logdir.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.append((value.tag, event.step, pytest.approx(value.simple_value)))
    return out


def test_events_go_to_jsonl_and_tensorboard(tmp_path):
    writer = MetricWriter(tmp_path, start_step=0)
    writer.write(10, {"loss": 2.5, "learning_rate": 1e-3})
    writer.write(10, {"eval_loss": 3.0})
    writer.close()
    assert read_metrics(tmp_path) == [
        {"step": 10, "loss": 2.5, "learning_rate": 1e-3},
        {"step": 10, "eval_loss": 3.0},
    ]
    scalars = _read_events(tmp_path)
    assert sorted(scalars) == [
        ("eval/loss", 10, 3.0),
        ("train/learning_rate", 10, 1e-3),
        ("train/loss", 10, 2.5),
    ]


def test_resume_drops_lines_after_the_restored_step_and_torn_lines(tmp_path):
    lines = [json.dumps({"step": s, "loss": float(s)}) for s in (5, 10, 15)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 20, "lo')
    writer = MetricWriter(tmp_path, start_step=10)
    writer.write(15, {"loss": 0.5})
    writer.close()
    assert read_metrics(tmp_path) == [
        {"step": 5, "loss": 5.0},
        {"step": 10, "loss": 10.0},
        {"step": 15, "loss": 0.5},
    ]


def test_a_fresh_run_starts_an_empty_record(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 3, "loss": 1.0}) + "\n")
    MetricWriter(tmp_path, start_step=0).close()
    assert read_metrics(tmp_path) == []


def test_progress_line_shows_rate_and_eta():
    line = progress_line(50, 100, {"loss": 1.25, "steps_per_sec": 10.0, "tokens_per_sec": 900.0})
    assert line == "step 50/100 (50%) | loss 1.25 | 10.0 steps/s, 900 tokens/s | ETA 0:00:05"
    # The first interval after a start includes compiling: its rate would give a wrong ETA.
    first = progress_line(
        5, 100, {"loss": 1.25, "steps_per_sec": 0.5, "tokens_per_sec": 45.0}, compiled=True
    )
    assert first == "step 5/100 (5%) | loss 1.25 | 0.5 steps/s, 45 tokens/s with compiling"


def test_a_missing_tensorboardx_is_said_before_training(tmp_path, monkeypatch):
    # The device check of 2026-11-28 lost a 2-min compile to this: the import came at step 100.
    import importlib.util

    from attnlab.train import writers

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboardX" else real(name, *a),
    )
    with pytest.raises(writers.MissingPackageError, match="tensorboardX is not installed"):
        MetricWriter(tmp_path, start_step=0)
    assert not (tmp_path / "metrics.jsonl").exists()
    MetricWriter(tmp_path, start_step=0, primary=False)  # other processes write nothing
