"""Sweeps on SLURM through submitit: the same results as on this machine, and a job requeued
mid-run resumes from its checkpoint to the same parameters.

The tiny sweep of ``tests/sweeps/sweep_testing.py`` (two reverse-task runs, position none and
rotary), 60 steps, once with ``--launcher=local`` and once with ``--launcher=slurm``, two
jobs at a time in both. While the SLURM sweep runs, each job is interrupted once its first
checkpoint is on disk: the rotary run's requeued (``scontrol requeue``: SLURM stops it with
SIGTERM, the trainer saves, and the job is queued again), the other's warned of its time
limit (SIGUSR2, what submitit asks SLURM to send: the trainer saves, submitit requeues the
job). Both jobs start again and resume.
"""

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from attnlab.train import restore_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sweeps"))
from sweep_testing import NONE, ROTARY, checkpoint_steps, position_sweep_args, sweep_command  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

STEPS = 60
# A save every 20 steps (three in a run: saving is most of a tiny run's time); each job is
# interrupted once it has saved at 20, 40 steps before its end.
ARGS = position_sweep_args(STEPS, eval_every=STEPS, checkpoint_every=20)
# XLA:CPU's results depend on how many CPUs a run may use (its thread pool splits the work);
# the test cluster binds no CPUs (TaskPlugin=task/none), so here the local runs share all CPUs
# too. (On a cluster that binds them, --slurm_cpus_per_task=1 matches --parallel=N pinned.)
LOCAL = ["--parallel=2", "--nopin_cpus"]
SLURM = ["--launcher=slurm", "--slurm_cpus_per_task=1", "--slurm_max_parallel=2"]
TIMING = ("steps_per_sec", "tokens_per_sec", "wall_seconds")
REQUEUED, TIME_LIMIT = ROTARY, NONE


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, slurm_env):
    workdir = tmp_path_factory.mktemp("local") / "position"
    command = sweep_command(workdir, ARGS, *LOCAL)
    done = subprocess.run(command, env=slurm_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def slurm_sweep(tmp_path_factory, slurm_env, local_sweep):
    """The SLURM sweep; once its first checkpoint is saved, each job is interrupted: the
    rotary run's requeued (``scontrol requeue``: SIGTERM, as on a preemption), the other run's
    warned of its time limit (submitit's SIGUSR2: save, then submitit requeues the job)."""
    del local_sweep  # first: it builds the dataset and fills the compilation cache
    workdir = tmp_path_factory.mktemp("slurm") / "position"
    command = sweep_command(workdir, ARGS, *SLURM)
    sweep = subprocess.Popen(
        command, env=slurm_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    actions = {REQUEUED: ["scontrol", "requeue"], TIME_LIMIT: ["scancel", "--signal=USR2"]}
    jobs = {}
    deadline = time.monotonic() + 300
    try:
        while len(jobs) < len(actions):
            assert sweep.poll() is None, sweep.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no checkpoint in time"
            for relpath, action in actions.items():
                if relpath not in jobs and checkpoint_steps(workdir / relpath):
                    job = json.loads((workdir / "jobs.json").read_text())[relpath]["id"]
                    done = subprocess.run([*action, job], capture_output=True, text=True)
                    assert done.returncode == 0, done.stderr
                    jobs[relpath] = job
            time.sleep(0.05)
        # SLURM starts a requeued job again once its old credential has expired (10 s on
        # the test cluster, AuthInfo=cred_expire; 120 s by default).
        output = sweep.communicate(timeout=600)[0]
    finally:
        sweep.kill()
        if (workdir / "jobs.json").exists():  # no job outlives the test
            recorded = json.loads((workdir / "jobs.json").read_text()).values()
            subprocess.run(["scancel", *(j["id"] for j in recorded)], check=False)
    assert sweep.returncode == 0, output[-3000:]
    return {"workdir": workdir, "jobs": jobs, "output": output}


def _rows(workdir: Path) -> list[dict]:
    with (workdir / "results.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _params(run_dir: Path) -> dict[str, np.ndarray]:
    model, _ = restore_model(run_dir)
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]
    return {
        jax.tree_util.keystr(p): np.asarray(
            jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v
        )
        for p, v in leaves
    }


def test_slurm_sweep_gives_the_results_of_the_local_sweep(slurm_sweep, local_sweep):
    got, want = _rows(slurm_sweep["workdir"]), _rows(local_sweep)
    assert [r["status"] for r in want] == ["finished", "finished"]
    assert got == want
    jobs = json.loads((slurm_sweep["workdir"] / "jobs.json").read_text())
    assert {j["launcher"] for j in jobs.values()} == {"slurm"} and len(jobs) == 2


@pytest.mark.parametrize("relpath", [REQUEUED, TIME_LIMIT])
def test_an_interrupted_job_resumes_from_its_checkpoint_to_the_same_parameters(
    slurm_sweep, local_sweep, relpath
):
    log = (slurm_sweep["workdir"] / relpath / "train.log").read_text()
    assert "on SIGTERM; checkpoint saved" in log  # the job stopped it: it saved
    resumed = [int(s) for s in re.findall(r"resumed from step (\d+)", log)]
    assert len(resumed) == 1 and 0 < resumed[0] < STEPS, log[-3000:]
    got = _params(slurm_sweep["workdir"] / relpath)
    want = _params(local_sweep / relpath)
    assert got.keys() == want.keys() and len(got) > 10
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
