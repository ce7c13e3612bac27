"""One workdir, one run: a second trainer on a workdir in use is refused in one line and the
first trains on undisturbed; a SIGKILLed run's lock does not block its resume.

Run A is paused (SIGSTOP) after its first checkpoint while B starts on the same workdir, so B
meets A mid-run every time; A then goes on (SIGCONT). Run C, the same command in its own
workdir, is SIGKILLed after its first checkpoint and started again. A undisturbed and C
resumed must both train the same model, to the bit.
"""

import os
import signal
import socket
import subprocess
import time

import pytest
from train_testing import assert_same_state, cli_command, model_metrics

from attnlab.train import restore_model
from attnlab.train.workdir import WorkdirError, hold_workdir

SPEC = "synthetic.py:at,quick"
OVERRIDES = {"num_train_steps": 60, "checkpoint_every_steps": 10, "log_every_steps": 10}


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _steps(workdir):
    path = workdir / "checkpoints"
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.exists() else []


def _wait_for_a_checkpoint(workdir, proc, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not _steps(workdir):
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before its first checkpoint")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint in time")
        time.sleep(0.02)


def _listing(workdir):
    return sorted((str(p.relative_to(workdir)), p.stat().st_mtime_ns) for p in workdir.rglob("*"))


def test_a_second_trainer_is_refused_in_one_line_and_the_first_goes_on(tmp_path, data_dir):
    first_dir, killed_dir = tmp_path / "a", tmp_path / "c"
    command = cli_command(SPEC, first_dir, data_dir, **OVERRIDES)
    log = (tmp_path / "a.log").open("w")
    first = subprocess.Popen(command, env=_env(), stdout=log, stderr=log)
    try:
        _wait_for_a_checkpoint(first_dir, first)
        first.send_signal(signal.SIGSTOP)  # mid-run while the second one tries
        before = _listing(first_dir)
        second = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
        assert _listing(first_dir) == before  # the second one wrote nothing
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"train.py: error: workdir {first_dir} is in use by another trainer")
    assert f"(host {socket.gethostname()}, pid {first.pid}, started " in lines[0]
    assert first.wait(timeout=240) == 0, (tmp_path / "a.log").read_text()[-3000:]
    log.close()

    killed_command = cli_command(SPEC, killed_dir, data_dir, **OVERRIDES)
    killed = subprocess.Popen(
        killed_command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_a_checkpoint(killed_dir, killed)
    killed.kill()
    killed.wait()
    assert (killed_dir / ".lock").exists()  # left behind, and not in the way
    again = subprocess.run(killed_command, env=_env(), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from step" in again.stderr

    assert_same_state(restore_model(killed_dir)[0], restore_model(first_dir)[0])
    assert model_metrics(killed_dir) == model_metrics(first_dir)


def test_the_lock_is_one_per_workdir_and_free_again_once_released(tmp_path):
    with hold_workdir(tmp_path):
        holder = (tmp_path / ".lock").read_text()
        assert holder.startswith(f"host {socket.gethostname()}, pid {os.getpid()}, started ")
        with pytest.raises(WorkdirError, match=r"is in use by another trainer \(host "):
            with hold_workdir(tmp_path):
                pass
    with hold_workdir(tmp_path):  # released: taken again
        pass
