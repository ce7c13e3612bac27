"""Fixtures of the train tests: a data directory, and the session's compilation cache.

Many tests train the same tiny model several times (and in subprocesses); JAX's persistent
compilation cache (``tests/conftest.py``) lets each program compile once.
"""

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session", autouse=True)
def _train_compilation_cache(compilation_cache_dir):
    """Every train test compiles through the persistent cache of ``tests/conftest.py``."""
    return compilation_cache_dir


@pytest.fixture(scope="session")
def at_quick_run(data_dir, tmp_path_factory):
    """``synthetic.py:at,quick`` trained in process: the 1-device reference of several tests."""
    from train_testing import quick_config

    from attnlab.train import train_and_evaluate

    workdir = tmp_path_factory.mktemp("at_quick")
    config = quick_config("synthetic.py:at,quick", data_dir, log_every_steps=5, max_to_keep=2)
    return workdir, train_and_evaluate(config, workdir)
