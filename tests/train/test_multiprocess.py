"""Two processes joined by ``jax.distributed`` on localhost, 2 CPU devices each (gloo).

One module fixture makes every run once (each launch costs a JAX start-up and compile):
- ``reference``: 1 process with 4 devices (``train_testing.four_device_reference``, shared
  with tests/slurm/test_srun_train.py);
- ``together``: 2 processes x 2 devices, uninterrupted;
- ``resumed``: 2 processes, SIGKILLed both mid-run, then (same command) SIGTERMed on process
  1 alone, then run to the end.
Five launches, because each check needs its own (the reference is shared); the persistent
compilation cache serves process 0 only (its keys hash the device topology, which differs
between the processes, and only process 0 writes), so every 2-process launch compiles in full
(BUILD_NOTES.md, "Why the compilation cache cannot help the second process").
Length buckets are on (``FOUR_DEVICE_OVERRIDES``).
"""

import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
from train_testing import (
    FOUR_DEVICE_OVERRIDES,
    FOUR_DEVICE_SPEC,
    FOUR_DEVICE_STEPS,
    assert_close_arrays,
    checkpoint_arrays,
    cli_command,
    forced_devices_flags,
    four_device_reference,
)

from attnlab.train.writers import read_metrics

SPEC, STEPS, OVERRIDES = FOUR_DEVICE_SPEC, FOUR_DEVICE_STEPS, FOUR_DEVICE_OVERRIDES
EVAL_KEYS = ("eval_loss", "eval_accuracy", "eval_wer", "eval_per")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, data_dir, log_prefix) -> list[subprocess.Popen]:
    port = _free_port()
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": forced_devices_flags(2)}
    procs = []
    for i in range(2):
        flags = [
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
        ]
        command = cli_command(SPEC, workdir, data_dir, **OVERRIDES) + flags
        log = open(f"{log_prefix}.{i}.log", "a")  # noqa: SIM115
        procs.append(subprocess.Popen(command, stdout=log, stderr=log, env=_env(env)))
    return procs


def _env(extra):
    return {**os.environ, **extra}


def _steps(workdir) -> list[int]:
    root = workdir / "checkpoints"
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.exists() else []


def _wait(procs, condition, what, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if any(p.poll() is not None for p in procs):
            pytest.fail(f"a process exited before {what}")
        if time.monotonic() > deadline:
            for p in procs:
                p.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _finish(procs, timeout=240) -> list[int]:
    return [p.wait(timeout=timeout) for p in procs]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    # The reference built the dataset, which the 2-process runs then share.
    data_dir, reference = four_device_reference(tmp_path_factory, dict(os.environ))
    out = {"root": root, "reference": reference}

    together = root / "together"
    assert _finish(_launch(together, data_dir, root / "together")) == [0, 0]
    out["together"] = together

    resumed = root / "resumed"
    logs = root / "resumed"
    first = _launch(resumed, data_dir, logs)
    _wait(first, lambda: len(_steps(resumed)) >= 1, "a checkpoint")
    for p in first:
        p.kill()
    _finish(first)
    out["killed_after"] = _steps(resumed)

    second = _launch(resumed, data_dir, logs)
    resume_from = out["killed_after"][-1]
    _wait(second, lambda: any(s > resume_from for s in _steps(resumed)), "a step past resuming")
    second[1].send_signal(signal.SIGTERM)  # process 1 alone
    out["sigterm_codes"] = _finish(second)
    out["sigterm_logs"] = [(root / f"resumed.{i}.log").read_text() for i in range(2)]
    out["sigterm_steps"] = _steps(resumed)

    out["final_codes"] = _finish(_launch(resumed, data_dir, logs))
    out["resumed"] = resumed
    return out


def _eval(workdir) -> dict[str, float]:
    records = [r for r in read_metrics(workdir) if "eval_loss" in r]
    assert [r["step"] for r in records] == [STEPS]
    return {k: records[-1][k] for k in EVAL_KEYS}


def test_two_processes_train_what_one_process_with_four_devices_trains(runs):
    # Every array of the train state: parameters, RNG state and Adam moments, none left out.
    assert_close_arrays(checkpoint_arrays(runs["together"]), checkpoint_arrays(runs["reference"]))
    first = {r["step"]: r["loss"] for r in read_metrics(runs["reference"]) if "loss" in r}
    assert first[4] != first[STEPS]  # training moved the parameters, so the match means something


def test_evaluation_split_over_processes_equals_one_process(runs):
    got, want = _eval(runs["together"]), _eval(runs["reference"])
    np.testing.assert_allclose([got[k] for k in EVAL_KEYS], [want[k] for k in EVAL_KEYS], rtol=1e-4)
    # A rate that the decoded outputs actually set: not 0, and not the 1.0 of empty outputs
    # (24 steps leave the model untrained, so its outputs may be longer than the references:
    # 1.43 here, 0.94 with the key bias's different initialisation).
    assert want["eval_per"] > 0.0 and want["eval_per"] != 1.0


def test_sigterm_to_one_process_stops_both_at_the_same_saved_step(runs):
    assert runs["sigterm_codes"] == [0, 0]
    stopped = [int(log.split("stopped at step ")[-1].split()[0]) for log in runs["sigterm_logs"]]
    assert stopped[0] == stopped[1] < STEPS
    assert "on SIGTERM" in runs["sigterm_logs"][1].split("stopped at step ")[-1]
    assert runs["sigterm_steps"][-1] == stopped[0]


def test_sigkill_then_resume_equals_the_uninterrupted_two_process_run(runs):
    assert runs["killed_after"] and runs["killed_after"][-1] < STEPS
    assert runs["final_codes"] == [0, 0]
    assert not list((runs["resumed"] / "checkpoints").glob("*tmp*"))
    got, want = checkpoint_arrays(runs["resumed"]), checkpoint_arrays(runs["together"])
    assert_close_arrays(got, want, rtol=1e-6, atol=1e-7)
    assert _eval(runs["resumed"]) == _eval(runs["together"])
