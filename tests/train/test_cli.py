"""The shell entry point, in subprocesses: bad flags, SIGKILL, SIGTERM, four devices."""

import os
import random
import re
import signal
import subprocess
import time

import numpy as np
import pytest
from train_testing import (
    CONFIGS,
    INTERRUPTED_STEPS,
    assert_same_state,
    cli_command,
    forced_devices_flags,
    model_metrics,
)

from attnlab.train import restore_model
from attnlab.train.writers import read_metrics

SPEC = "synthetic.py:at,quick"


def _env(**extra):
    return {**os.environ, "JAX_PLATFORMS": "cpu", **extra}


def _wait_until(condition, proc, timeout=180.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _steps(workdir):
    path = workdir / "checkpoints"
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.exists() else []


def test_bad_flags_variants_keys_and_values_exit_2_with_one_line(tmp_path, data_dir):
    config = f"--config={CONFIGS / 'synthetic.py'}"
    workdir = f"--workdir={tmp_path}"
    cases = {
        "variant": (
            [f"{config}:at,shuffle", workdir],
            "unknown variant 'shuffle' for synthetic.py; "
            "valid: at, nat, vanilla, cmlm, eos_canvas, ctc, dag, copy, reverse, sort, quick, "
            "glat",
        ),
        "key": (
            [f"{config}:at", workdir, "--config.no_such_key=1"],
            "unknown config key 'no_such_key'; valid keys: ",
        ),
        "option": (
            [f"{config}:at", workdir, "--config.model.attention=magic"],
            "unknown model.attention 'magic'; valid: softmax, relu, relu_over_length,",
        ),
        "value": (
            [f"{config}:at", workdir, "--config.schedule=linear"],
            "unknown schedule 'linear'; valid: rsqrt, cosine, constant",
        ),
        "flag": (
            [f"{config}:at", workdir, "--learning_rate=1"],
            "unknown flag --learning_rate; valid: --config, --coordinator_address, "
            "--num_processes, --process_id, --workdir",
        ),
    }
    procs = {
        name: subprocess.Popen(
            [*cli_command(SPEC, tmp_path, data_dir)[:2], *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for name, (args, _) in cases.items()
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert proc.returncode == 2, (name, err)
        assert len(lines) == 1, (name, err)
        assert lines[0].startswith("train.py: error: " + cases[name][1]), (name, lines[0])
    assert not (tmp_path / "checkpoints").exists()  # nothing started


def test_four_devices_follow_the_one_device_loss_curve(at_quick_run, data_dir, tmp_path):
    one_device = {r["step"]: r["loss"] for r in read_metrics(at_quick_run[0]) if "loss" in r}
    command = cli_command(SPEC, tmp_path, data_dir, log_every_steps=5, num_train_steps=20)
    flags = forced_devices_flags(4)
    run = subprocess.run(
        command, capture_output=True, text=True, env=_env(XLA_FLAGS=flags), timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "data parallel over 4 devices" in run.stderr
    four = {r["step"]: r["loss"] for r in read_metrics(tmp_path) if "loss" in r}
    assert sorted(four) == [5, 10, 15, 20]
    got = np.array([four[s] for s in sorted(four)])
    want = np.array([one_device[s] for s in sorted(four)])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert not np.array_equal(want[0], want[-1])  # the curve moves, so the match means something


def test_sigkill_anytime_then_sigterm_then_resume_equals_an_uninterrupted_run(
    data_dir, tmp_path, at_interrupted_reference
):
    reference, last = at_interrupted_reference, INTERRUPTED_STEPS["num_train_steps"]
    workdir = tmp_path / "run"
    # A tiny model saving every 5 steps spends most of its time saving, so a kill at a random
    # moment most likely lands inside a save.
    steps = {**INTERRUPTED_STEPS, "checkpoint_every_steps": 5, "max_to_keep": 2}
    command = cli_command(SPEC, workdir, data_dir, **steps)
    log = open(tmp_path / "log.txt", "w+")  # noqa: SIM115

    first = subprocess.Popen(command, stderr=log, stdout=log, env=_env())
    _wait_until(lambda: len(_steps(workdir)) >= 2, first, what="two checkpoints")
    time.sleep(random.Random(0).uniform(0.0, 0.5))
    first.kill()
    first.wait()

    second = subprocess.Popen(command, stderr=log, stdout=log, env=_env())
    start = time.monotonic()
    _wait_until(lambda: "resumed from step" in (tmp_path / "log.txt").read_text(), second)
    resume_seconds = time.monotonic() - start
    resumed = int((tmp_path / "log.txt").read_text().split("resumed from step ")[1].split()[0])

    def progressed() -> bool:
        # From the second run's log lines: metrics.jsonl may still hold the killed run's steps
        # past its last complete checkpoint until the second run's writer drops them.
        after = (tmp_path / "log.txt").read_text().split("resumed from step ", 1)[1]
        return any(int(s) >= resumed + 10 for s in re.findall(rf"step (\d+)/{last}", after))

    _wait_until(progressed, second, what="progress after resuming")
    second.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert second.wait(timeout=60) == 0
    assert time.monotonic() - sent < 30  # seconds, on two shared cores
    text = (tmp_path / "log.txt").read_text()
    stopped = int(text.split("stopped at step ")[1].split()[0])
    assert resumed < stopped < last and _steps(workdir)[-1] == stopped

    third = subprocess.run(command, stderr=log, stdout=log, env=_env(), timeout=300)
    assert third.returncode == 0
    assert not list((workdir / "checkpoints").glob("*tmp*"))
    assert_same_state(restore_model(workdir)[0], restore_model(reference)[0])
    assert model_metrics(workdir) == model_metrics(reference)
    print(f"resume: first step restored {resume_seconds:.1f}s after launch; {resumed=} {stopped=}")
