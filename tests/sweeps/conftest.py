"""Fixtures of the sweep tests: a data directory and a JAX compilation cache for subprocesses.

Sweep runs are ``experiments/train.py`` subprocesses; they share one persistent compilation
cache so a program compiled by one run (or by a killed run) is not compiled again. A cache
hit runs the executable a fresh compile would have produced, so no result changes.
"""

import os

import pytest


@pytest.fixture(scope="session")
def sweep_env(tmp_path_factory):
    """Environment for ablate.py subprocesses: CPU, a private data dir, a shared JAX cache."""
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        ATTNLAB_DATA_DIR=str(tmp_path_factory.mktemp("tfds")),
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2",
    )
    return env
