"""Fixtures of the train tests: a data directory and a compilation cache per test session.

Many tests train the same tiny model several times (and in subprocesses); JAX's persistent
compilation cache lets each program compile once. It changes no result: a cache hit runs
the executable a fresh compile would have produced.
"""

import os

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("jax_cache"))
    before = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    compilation_cache.set_cache_dir(path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    compilation_cache.reset_cache()  # takes effect even if something compiled before
    env = {"JAX_COMPILATION_CACHE_DIR": path, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2"}
    os.environ.update(env)  # subprocesses share it
    yield path
    for key in env:
        os.environ.pop(key, None)
    compilation_cache.set_cache_dir(before[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
    compilation_cache.reset_cache()


@pytest.fixture(scope="session")
def at_quick_run(data_dir, tmp_path_factory):
    """``synthetic.py:at,quick`` trained in process: the 1-device reference of several tests."""
    from train_testing import quick_config

    from attnlab.train import train_and_evaluate

    workdir = tmp_path_factory.mktemp("at_quick")
    config = quick_config("synthetic.py:at,quick", data_dir, log_every_steps=5, max_to_keep=2)
    return workdir, train_and_evaluate(config, workdir)
