"""Helpers for the train tests: tiny configs on small real datasets, exact state comparison."""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from attnlab.train.checkpoint import Checkpointer
from attnlab.train.config import load_config_file
from attnlab.train.resolve import train_state_template
from attnlab.train.workdir import read_trained_config
from attnlab.train.writers import TIMING_KEYS, read_metrics

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "experiments" / "configs"
TRAIN = ROOT / "experiments" / "train.py"

# NAT with CMLM masking, dropout and BatchNorm: every kind of state a resume must restore
# (parameters, Adam moments, BatchNorm statistics, dropout RNG counters, the masking key),
# logging, evaluating and saving at steps that do not line up.
RESUME = {
    "model.norm": "batch",
    "model.nat_recipe": "cmlm",
    "num_train_steps": 12,
    "log_every_steps": 2,
    "eval_every_steps": 5,
    "checkpoint_every_steps": 3,
    "max_to_keep": 10,
    "eval_decode_examples": 16,
}


# The AT runs that test_cli.py and test_first_hour.py SIGKILL, SIGTERM or Ctrl-C and resume:
# long enough that each interruption lands well before the end. The uninterrupted reference
# (conftest's ``at_interrupted_reference``) saves once, at the end.
INTERRUPTED_STEPS = {
    "num_train_steps": 100,
    "log_every_steps": 5,
    "eval_every_steps": 50,
    "checkpoint_every_steps": 100,
}


def load_config(spec: str):
    """``get_config`` of ``experiments/configs/<file>`` with its variant, as the CLI does."""
    return load_config_file(CONFIGS / spec)


def quick_config(spec: str, data_dir: str, **overrides):
    """A config file's variant with ``--config.key=value`` style overrides (dots for nesting)."""
    config = load_config(spec)
    for key, value in {"data.data_dir": data_dir, **overrides}.items():
        target = config
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return config


def cli_command(spec: str, workdir, data_dir: str, **overrides) -> list[str]:
    """The shell command that trains what ``quick_config(spec, data_dir, **overrides)`` gives."""
    file, _, variant = spec.partition(":")
    flags = [f"--config.{k}={v}" for k, v in {"data.data_dir": data_dir, **overrides}.items()]
    config = f"--config={CONFIGS / file}:{variant}"
    return [sys.executable, str(TRAIN), config, f"--workdir={workdir}", *flags]


def state_leaves(model: nnx.Module) -> dict[str, np.ndarray]:
    """Every array of the model's state (RNG keys as raw data), by path."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]:
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def checkpoint_arrays(workdir) -> dict[str, np.ndarray]:
    """Every array of the newest checkpoint's train state, by path: the parameters, the rest
    of the model state (RNG keys as raw data) and the optimizer's moments and counts."""
    config = read_trained_config(Path(workdir))
    _, template = train_state_template(config)
    ckpt = Checkpointer(Path(workdir) / "checkpoints", max_to_keep=1, read_only=True)
    try:
        state, _ = ckpt.restore(template, model_config=config.model.to_dict())
    finally:
        ckpt.close()
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def assert_close_arrays(got: dict, want: dict, *, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    """The same paths; floating-point arrays equal within ``rtol``/``atol`` (the default allows
    float32 reduction-order differences), every other array (RNG keys, counts) exactly."""
    assert got.keys() == want.keys() and len(got) > 10
    for key in want:
        if want[key].dtype.kind == "f":
            np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def assert_same_state(a: nnx.Module, b: nnx.Module) -> None:
    """Bit-identical: every parameter, statistic and RNG counter equal, exactly."""
    sa, sb = state_leaves(a), state_leaves(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


def model_metrics(workdir) -> list[dict]:
    """``metrics.jsonl`` without the machine-speed fields."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(workdir)]


class Crash(Exception):
    """Stands for the process dying while it fetches batch ``k + 1``."""


def crash_after(monkeypatch, k: int) -> None:
    """Make the next training run raise ``Crash`` when it fetches its batch ``k + 1``."""
    from attnlab.train import loop as loop_module

    real = loop_module.make_train_iterator

    def make(data_cfg, **kwargs):
        iterator = real(data_cfg, **kwargs)
        fetched = [0]
        original_next = type(iterator).__next__

        class Dying(type(iterator)):
            def __next__(self):
                fetched[0] += 1
                if fetched[0] > k:
                    raise Crash
                return original_next(self)

        iterator.__class__ = Dying
        return iterator

    monkeypatch.setattr(loop_module, "make_train_iterator", make)


def forced_devices_flags(devices: int) -> str:
    """``XLA_FLAGS`` for a subprocess: the suite's flags (tests/conftest.py) and ``devices``
    forced CPU devices."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"


# One process with 4 CPU devices trains what test_multiprocess.py's 2-process runs and
# tests/slurm/test_srun_train.py's 2 srun tasks (2 devices each) must match. Length buckets are
# on, so global batches of different shapes follow one another: processes that chose their
# batches apart would disagree on shapes (and hang) or on the parameters.
FOUR_DEVICE_SPEC = "synthetic.py:at,quick"
FOUR_DEVICE_STEPS = 24
FOUR_DEVICE_OVERRIDES = {
    "num_train_steps": FOUR_DEVICE_STEPS,
    "log_every_steps": 4,
    "eval_every_steps": FOUR_DEVICE_STEPS,
    "checkpoint_every_steps": 6,  # few saves: in a tiny run, saving is most of the time
    "max_to_keep": 20,
    "eval_batch_size": 32,
    "eval_decode_examples": 40,  # two evaluation batches, the second one in part
    "data.bucket_boundaries": "(9,)",
}


def four_device_reference(tmp_path_factory, env: dict) -> tuple[str, Path]:
    """``(data_dir, workdir)``: ``FOUR_DEVICE_SPEC`` with ``FOUR_DEVICE_OVERRIDES`` trained
    by one process with 4 CPU devices, in ``env``; once in the session, also across xdist
    workers (a file lock in the directory they share). The multi-process runs read their data
    from ``data_dir``, which this run built: processes that start together then never build
    a dataset at the same time."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/, above each worker's popen-gwK/
    shared = root / "four_device_reference"
    data_dir, workdir = str(shared / "tfds"), shared / "run"
    with open(root / "four_device_reference.lock", "w") as lock:  # unlocked when closed
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)  # a run that failed part-way
            command = cli_command(FOUR_DEVICE_SPEC, workdir, data_dir, **FOUR_DEVICE_OVERRIDES)
            env = {**env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": forced_devices_flags(4)}
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            (shared / "done").touch()
    return data_dir, workdir
