"""Tests against a real SLURM cluster (marker ``slurm``): ``srun`` training, sweeps through
submitit, a requeued job. ``make test-slurm`` brings a one-node cluster up on this machine
(``experiments/slurm/local_cluster.sh``), runs them, and stops it; CI brings it up before
``make test``. Where no cluster answers ``sinfo``, each test skips with one line saying so;
under ``CI=true`` that is an error instead, so CI cannot pass without them.
"""

import os
import shutil
import subprocess

import pytest

HOW = "run them with `make test-slurm` (a one-node SLURM cluster on this machine)"


def _why_no_cluster() -> str | None:
    if shutil.which("sinfo") is None:
        return "sinfo is not installed"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out"
    if answer.returncode != 0:
        return f"sinfo failed: {answer.stderr.decode(errors='replace').strip()[:120]}"
    states = answer.stdout.decode().split()
    if not any(s.rstrip("*~#").lower() in ("idle", "mixed", "allocated") for s in states):
        return f"no node is up (sinfo: {' '.join(states) or 'no nodes'})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A SLURM cluster that answers, or a skip (an error under CI=true)."""
    why = _why_no_cluster()
    if why is None:
        return
    message = f"no SLURM cluster ({why}); {HOW}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true: the slurm tests must run", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory, compilation_cache_dir):
    """Environment of the jobs: CPU, a private data dir, the session's compilation cache.

    SLURM passes the submitting environment on to its jobs (sbatch and srun: --export=ALL).
    """
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", ATTNLAB_DATA_DIR=str(tmp_path_factory.mktemp("tfds")))
    env["JAX_COMPILATION_CACHE_DIR"] = compilation_cache_dir
    return env
