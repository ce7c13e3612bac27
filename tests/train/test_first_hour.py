"""What a new user hits in the first hour: Ctrl-C, a changed config on resume, bad workdirs,
corrupt checkpoints, absurd values. Each loses no work and says what happened in one line."""

import json
import logging as std_logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from train_testing import (
    INTERRUPTED_STEPS,
    assert_same_state,
    cli_command,
    model_metrics,
    quick_config,
)

from attnlab.inference import restore
from attnlab.train import restore_model, train_and_evaluate
from attnlab.train.config import RESUMABLE_KEYS
from attnlab.train.workdir import (
    WorkdirError,
    config_as_json,
    config_changes,
    default_config,
    with_defaults,
)
from attnlab.train.writers import read_metrics

SPEC = "synthetic.py:at,quick"


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _run(command, **kwargs):
    return subprocess.run(
        command, capture_output=True, text=True, env=_env(), timeout=300, **kwargs
    )


def _not_info(stderr: str) -> list[str]:
    """stderr lines other than absl INFO lines."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("I")]


SMALL = {"num_train_steps": 4, "checkpoint_every_steps": 2, "eval_every_steps": 4}


def _small_run(data_dir, workdir, **overrides):
    config = quick_config(SPEC, data_dir, **{**SMALL, **overrides})
    return train_and_evaluate(config, workdir)


@pytest.fixture(scope="module")
def small_run(data_dir, tmp_path_factory):
    """One finished ``_small_run`` (4 steps, saved at 2 and 4), trained once for the module;
    ``finished_copy`` gives each test its own copy to resume, refuse or corrupt."""
    workdir = tmp_path_factory.mktemp("small_run")
    assert _small_run(data_dir, workdir)["step"] == 4
    return workdir


@pytest.fixture
def finished_copy(small_run):
    """``copy(workdir)``: a copy of the module's finished small run at ``workdir``."""

    def copy(workdir: Path) -> Path:
        shutil.copytree(small_run, workdir, dirs_exist_ok=True)
        return workdir

    return copy


def test_ctrl_c_twice_saves_once_exits_0_and_the_resume_is_exact(
    data_dir, tmp_path, at_interrupted_reference
):
    workdir = tmp_path / "run"
    command = cli_command(SPEC, workdir, data_dir, **INTERRUPTED_STEPS)  # saves at the end only
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    deadline = time.monotonic() + 180
    while not any(r["step"] >= 10 for r in read_metrics(workdir)):
        assert proc.poll() is None and time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # a second Ctrl-C, while it stops and saves
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("train.py: stopped at step ") and "on Ctrl-C; checkpoint saved" in last
    stopped = int(last.split("stopped at step ")[1].split()[0])
    assert 10 <= stopped < INTERRUPTED_STEPS["num_train_steps"]
    saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved[-1] == stopped and not list((workdir / "checkpoints").glob("*tmp*"))

    assert _run(command).returncode == 0
    reference = at_interrupted_reference
    assert_same_state(restore_model(workdir)[0], restore_model(reference)[0])
    assert model_metrics(workdir) == model_metrics(reference)


def test_sigterm_during_set_up_exits_0_with_one_line_and_writes_no_checkpoint(
    data_dir, tmp_path, small_run
):
    # small_run built the dataset: set-up is the model's alone
    workdir = tmp_path / "run"
    command = cli_command(SPEC, workdir, data_dir, **SMALL)
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    deadline = time.monotonic() + 120
    while not (workdir / "config.json").exists():  # written in set-up, before the model
        assert proc.poll() is None and time.monotonic() < deadline, "no set-up"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert _not_info(err) == [
        "train.py: stopped during set-up on SIGTERM; no step was trained, nothing lost"
    ]
    assert not list(workdir.glob("checkpoints/*"))
    assert _run(command).returncode == 0  # and the same command then trains from step 0


@pytest.mark.parametrize(
    "change",
    [
        {"learning_rate": 1e-2},
        {"model.num_heads": 4},
        {"data.synthetic_task": "copy"},
    ],
    ids=["learning_rate", "num_heads", "task"],
)
def test_a_changed_config_is_refused_and_config_json_is_untouched(
    data_dir, tmp_path, change, finished_copy
):
    finished_copy(tmp_path)
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(WorkdirError) as err:
        _small_run(data_dir, tmp_path, **change)
    message = str(err.value)
    key, value = next(iter(change.items()))
    old = json.loads(before)
    for part in key.split("."):
        old = old[part]
    assert "\n" not in message
    assert f"{key} is {old!r} there, {value!r} now" in message
    assert "give a new --workdir" in message and "num_train_steps" in message
    assert (tmp_path / "config.json").read_bytes() == before


def test_a_key_added_since_the_run_started_is_compared_with_its_default(
    data_dir, tmp_path, finished_copy
):
    """An older config.json lacks a newer key: the run was trained as its default says, so
    the default resumes and any other value is a change."""
    finished_copy(tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    assert saved["model"].pop("mark_copies") is False
    path.write_text(json.dumps(saved))
    with pytest.raises(WorkdirError, match="model.mark_copies is False there, True now"):
        _small_run(data_dir, tmp_path, num_train_steps=6, **{"model.mark_copies": True})
    assert _small_run(data_dir, tmp_path, num_train_steps=6)["step"] == 6


def test_a_model_whose_config_json_lacks_a_newer_key_restores_at_its_default(data_dir, tmp_path):
    """Decoding an older run: the model is built with the key's default (the NAT reads
    ``model.mark_copies`` directly), by ``restore_model`` and by ``inference.restore``."""
    config = quick_config("synthetic.py:nat,quick", data_dir, num_train_steps=2)
    train_and_evaluate(config, tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    assert saved["model"].pop("mark_copies") is False
    path.write_text(json.dumps(saved))
    model, restored = restore_model(tmp_path)
    assert restored.model.mark_copies is False and not hasattr(model, "copy_marks")
    assert restored.model.nat_recipe == saved["model"]["nat_recipe"]  # saved values kept
    model, restored, step = restore(tmp_path)
    assert step == 2 and restored.model.mark_copies is False


def test_with_defaults_adds_missing_keys_and_keeps_saved_and_removed_ones():
    saved = {"a": 1, "gone": 5, "sec": {"x": 1, "old": 2}}
    defaults = {"a": 0, "b": 3, "sec": {"x": 0, "y": 4}, "new": {"z": 6}}
    assert with_defaults(saved, defaults) == {
        "a": 1,
        "b": 3,
        "gone": 5,
        "sec": {"x": 1, "old": 2, "y": 4},
        "new": {"z": 6},
    }
    assert saved == {"a": 1, "gone": 5, "sec": {"x": 1, "old": 2}}  # not modified


def test_a_moved_run_directory_resumes_its_distilled_data_from_the_new_place():
    """at_vs_nat.py keeps a student's distilled data in its run directory: after the
    directory moves, the path differs and the run must still resume; what the data is (its
    name, its base) may not change."""
    saved = json.loads(config_as_json(default_config()))
    saved["data"].update(name="distilled_seq2seq", distill_base="cmudict_g2p", distill_dir="/a/d")
    moved = default_config()
    moved.data.update(name="distilled_seq2seq", distill_base="cmudict_g2p", distill_dir="/b/d")
    assert config_changes(saved, moved) == []
    moved.data.distill_base = "synthetic_seq2seq"
    assert config_changes(saved, moved) == [
        "data.distill_base is 'cmudict_g2p' there, 'synthetic_seq2seq' now"
    ]


def test_resumable_keys_may_change_and_are_recorded(data_dir, tmp_path, finished_copy):
    finished_copy(tmp_path)
    result = _small_run(data_dir, tmp_path, num_train_steps=6, eval_decode_examples=8)
    assert result["step"] == 6
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["num_train_steps"] == 6 and saved["eval_decode_examples"] == 8


def test_a_finished_run_resumed_adds_no_event_file_and_prints_no_warning(
    data_dir, tmp_path, finished_copy
):
    command = cli_command(SPEC, finished_copy(tmp_path), data_dir, **SMALL)
    events = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert events  # the finished run wrote its event file
    again = _run(command)
    assert again.returncode == 0
    assert _not_info(again.stderr) == []  # no library warnings on a plain resume
    assert "final: step 4 |" in again.stderr
    assert sorted(p.name for p in tmp_path.glob("events.out.tfevents.*")) == events

    # A changed config is refused with one line and nothing before it: no dataset, backend
    # or log start-up (without JAX_PLATFORMS, jax would say it found no TPU).
    env = {k: v for k, v in _env().items() if k != "JAX_PLATFORMS"}
    refused = subprocess.run(
        [*command, "--config.learning_rate=0.01"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert refused.returncode == 2 and refused.stdout == ""
    trained_rate = json.loads((tmp_path / "config.json").read_text())["learning_rate"]
    assert trained_rate != 0.01
    assert refused.stderr.splitlines() == [
        f"train.py: error: workdir {tmp_path} was trained with another config: learning_rate "
        f"is {trained_rate!r} there, 0.01 now. Only {', '.join(RESUMABLE_KEYS)} may change on "
        "resume; to train the new config, give a new --workdir"
    ]
    assert sorted(p.name for p in tmp_path.glob("events.out.tfevents.*")) == events


def test_the_no_tpu_info_line_of_jax_is_filtered_and_other_lines_are_kept():
    """jax logs ``Unable to initialize backend 'tpu': ...`` at INFO on every machine without
    a TPU when JAX_PLATFORMS is unset (jax/_src/xla_bridge.py); the entry points drop it."""
    from absl import logging as absl_logging

    from attnlab.train.cli import quiet_libraries

    handler = absl_logging.get_absl_handler()
    before = list(handler.filters)
    quiet_libraries()
    try:
        added = [f for f in handler.filters if f not in before]
        assert len(added) == 1

        def shown(level: int, message: str) -> bool:
            record = std_logging.LogRecord(
                "jax._src.xla_bridge", level, "x.py", 1, message, (), None
            )
            return bool(added[0].filter(record))

        no_tpu = "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so"
        assert not shown(std_logging.INFO, no_tpu)
        assert shown(std_logging.WARNING, no_tpu)
        assert shown(std_logging.INFO, "Unable to initialize backend 'cuda': no GPU")
        assert shown(std_logging.INFO, "step 5/60 (8%) | loss 4.1")
    finally:
        handler.filters[:] = before


def test_a_workdir_under_a_file_is_one_line(data_dir, tmp_path):
    (tmp_path / "file").write_text("")
    run = _run(cli_command(SPEC, tmp_path / "file" / "run", data_dir))
    assert run.returncode == 2
    assert _not_info(run.stderr) == [
        f"train.py: error: cannot write to workdir {tmp_path}/file/run: {tmp_path}/file is a "
        "file, not a directory; pick another --workdir"
    ]


@pytest.fixture
def read_only_mount(tmp_path):
    """``mount(src) -> path``: a read-only bind mount of ``src`` (needs root; CI is root)."""
    mounts = []

    def mount(src: Path) -> Path:
        target = tmp_path / f"ro{len(mounts)}"
        target.mkdir()
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(target)], check=False)
        if done.returncode:
            pytest.skip("cannot bind-mount read-only here (not root?)")
        mounts.append(target)
        return target

    yield mount
    for target in mounts:
        subprocess.run(["umount", str(target)], check=False)


def test_read_only_workdirs_refuse_a_new_run_and_report_a_finished_one(
    data_dir, tmp_path, read_only_mount, finished_copy
):
    empty, finished = tmp_path / "empty", finished_copy(tmp_path / "finished")
    empty.mkdir()
    fresh = _run(cli_command(SPEC, read_only_mount(empty), data_dir))
    assert fresh.returncode == 2
    lines = _not_info(fresh.stderr)
    assert len(lines) == 1 and "Read-only file system; pick another --workdir" in lines[0]
    done = _run(cli_command(SPEC, read_only_mount(finished), data_dir, **SMALL))
    assert done.returncode == 0, done.stderr[-2000:]
    assert _not_info(done.stderr) == []
    assert "is finished: step 4 of 4" in done.stderr


def _steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _corrupt(workdir: Path, steps) -> None:
    for step in steps:
        for f in (workdir / "checkpoints" / str(step) / "state").rglob("*"):
            if f.is_file() and f.parent.name == "d":
                f.write_bytes(b"")


def test_corrupt_checkpoints_take_one_line_each_and_none_readable_refuses(
    data_dir, tmp_path, finished_copy
):
    command = cli_command(SPEC, finished_copy(tmp_path), data_dir, **SMALL)
    assert _steps(tmp_path) == [2, 4]
    _corrupt(tmp_path, [4])
    fallback = _run(command)
    assert fallback.returncode == 0
    assert _not_info(fallback.stderr) == [
        line for line in _not_info(fallback.stderr) if "checkpoint step 4 is unreadable" in line
    ]
    assert len(_not_info(fallback.stderr)) == 1
    assert f"moved it to {tmp_path}/corrupt_checkpoints/4" in fallback.stderr
    assert "bound method" not in fallback.stderr

    _corrupt(tmp_path, [2, 4])
    refused = _run(command)
    assert refused.returncode == 2
    lines = _not_info(refused.stderr)
    assert len(lines) == 3 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert lines[-1].startswith("train.py: error: no readable checkpoint in")
    assert "--config.restart_if_unreadable=true" in lines[-1]
    assert not (tmp_path / "checkpoints" / "2").exists()  # nothing was trained over them
    restarted = _run([*command, "--config.restart_if_unreadable=true"])
    assert restarted.returncode == 0
    assert "starting over from step 0, as asked" in restarted.stderr


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"batch_size": 100_000_000}, "batch_size 100000000 is larger than the "),
        ({"learning_rate": float("nan")}, "learning_rate must be finite and > 0, got nan"),
        ({"learning_rate": 0.0}, "learning_rate must be finite and > 0, got 0.0"),
        ({"num_train_steps": 2**31}, "num_train_steps must be in [1, 2147483647]"),
        ({"eval_batch_size": 0}, "eval_batch_size must be in [1, 2147483647], got 0"),
        ({"model.d_model": -8}, "model.d_model must be in [1, 1048576], got -8"),
        ({"model.num_encoder_layers": -1}, "model.num_encoder_layers must be in [0, 1000]"),
    ],
    ids=["batch", "lr_nan", "lr_zero", "steps", "eval_batch", "d_model", "layers"],
)
def test_absurd_values_are_refused_before_any_work(data_dir, tmp_path, override, expected):
    with pytest.raises(ValueError) as err:
        train_and_evaluate(quick_config(SPEC, data_dir, **override), tmp_path / "run")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # the batch is refused once the data is read: no dir


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be finite and > 0, got 0.0"),
        ({"model.attention": "magic"}, "unknown model.attention 'magic'; valid: softmax, relu"),
        ({"data.name": "cmudict"}, "unknown data.name 'cmudict'; valid: cmudict_g2p, "),
    ],
    ids=["training", "model", "data"],
)
def test_a_refused_value_is_one_line_and_leaves_no_directory(tmp_path, override, expected):
    """Checked before the dataset, the backend, the logs and the workdir: the one line comes
    first, and neither the workdir nor the data directory is made (without JAX_PLATFORMS, a
    backend that started would log its search for a TPU)."""
    workdir, data = tmp_path / "runs" / "new", tmp_path / "tfds"
    env = {k: v for k, v in _env().items() if k != "JAX_PLATFORMS"}
    refused = subprocess.run(
        cli_command(SPEC, workdir, str(data), **override),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert refused.returncode == 2 and refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"train.py: error: {expected}"), lines
    assert not (tmp_path / "runs").exists() and not data.exists()


def test_a_second_entry_point_keeps_its_trained_models_on_ctrl_c(data_dir, tmp_path, monkeypatch):
    """at_vs_nat: Ctrl-C while a model trains stops the experiment with that model saved."""
    from attnlab.analysis import at_vs_nat
    from attnlab.train import loop

    real = loop.teacher_forced_metrics

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the first evaluation
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "teacher_forced_metrics", interrupted)
    config = quick_config(SPEC, data_dir, num_train_steps=8, eval_every_steps=4)
    with pytest.raises(
        at_vs_nat.TrainingStopped, match=r"stopped training .at. at step 4 on Ctrl-C"
    ):
        at_vs_nat._train(config, tmp_path / "at")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "at" / "checkpoints")) == ["4"]
