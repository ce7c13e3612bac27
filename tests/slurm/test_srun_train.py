"""``srun -n 2 train.py``: two tasks find each other through JAX's cluster detection, with no
coordinator flags, and train what one process with all four devices trains.

Each task has 2 CPU devices (XLA_FLAGS); the reference is one plain process with 4, the one
tests/train/test_multiprocess.py compares with (``train_testing.four_device_reference``, with
length buckets on).
"""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from attnlab.train import restore_model
from attnlab.train.workdir import LOCK_FILE
from attnlab.train.writers import read_metrics

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_testing import (  # noqa: E402
    FOUR_DEVICE_OVERRIDES,
    FOUR_DEVICE_SPEC,
    FOUR_DEVICE_STEPS,
    cli_command,
    four_device_reference,
)

STEPS = FOUR_DEVICE_STEPS
# The reference's config; one save, at the end, and a smaller evaluation: neither changes
# the parameters.
OVERRIDES = {**FOUR_DEVICE_OVERRIDES, "checkpoint_every_steps": STEPS, "eval_decode_examples": 16}


def _env(base, devices: int) -> dict:
    flags = f"{base.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    return {**base, "XLA_FLAGS": flags.strip()}


def _params(workdir) -> dict[str, np.ndarray]:
    model, _ = restore_model(workdir)
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def test_srun_two_tasks_train_what_one_process_with_four_devices_trains(
    tmp_path, tmp_path_factory, slurm_env
):
    data_dir, reference = four_device_reference(tmp_path_factory, slurm_env)

    together = tmp_path / "srun"
    env = _env(slurm_env, 2)
    assert not any(k in env for k in ("SLURM_JOB_ID", "SLURM_PROCID"))  # srun sets them
    train = cli_command(FOUR_DEVICE_SPEC, together, data_dir, **OVERRIDES)
    two = subprocess.run(
        ["srun", "-n", "2", "--kill-on-bad-exit=1", *train],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    # One run of two processes (process 0 holds the workdir's lock), not two runs of one.
    assert (together / LOCK_FILE).read_text().endswith(", 2 processes")
    assert two.stderr.count(f"final: step {STEPS}") == 2  # both tasks trained to the end

    got, want = _params(together), _params(reference)
    assert got.keys() == want.keys() and len(got) > 10
    for key in want:  # every parameter (attention has no key bias: docs/sharding.md)
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)
    losses = {r["step"]: r["loss"] for r in read_metrics(reference) if "loss" in r}
    assert losses[4] != losses[STEPS]  # training moved the parameters: the match means something
