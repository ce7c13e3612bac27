"""Helpers for the train tests: tiny configs on small real datasets, exact state comparison."""

import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from attnlab.train.config import load_config_file
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


def assert_same_state(a: nnx.Module, b: nnx.Module) -> None:
    """Bit-identical: every parameter, statistic and RNG counter equal, exactly."""
    sa, sb = state_leaves(a), state_leaves(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


def model_metrics(workdir) -> list[dict]:
    """``metrics.jsonl`` without the machine-speed fields."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(workdir)]
