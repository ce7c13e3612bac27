"""Fixtures of the train tests: a data directory, and the session's compilation cache.

Many tests train the same tiny model several times (and in subprocesses); JAX's persistent
compilation cache (``tests/conftest.py``) lets each program compile once.
"""

import fcntl
import os
import shutil

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


@pytest.fixture(scope="session")
def at_interrupted_reference(data_dir, tmp_path_factory):
    """``synthetic.py:at,quick`` for ``train_testing.INTERRUPTED_STEPS``, uninterrupted and in
    process: what the runs that test_cli.py and test_first_hour.py stop and resume must end
    as. Trained once in the session, also across xdist workers (a file lock in the directory
    the workers share), on the data directory of the worker that trains it. Returns its
    workdir."""
    from train_testing import INTERRUPTED_STEPS, quick_config

    from attnlab.train import train_and_evaluate

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/, above each worker's popen-gwK/
    shared = root / "at_interrupted_reference"
    with open(root / "at_interrupted_reference.lock", "w") as lock:  # unlocked when closed
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)  # a build that failed part-way
            config = quick_config("synthetic.py:at,quick", data_dir, **INTERRUPTED_STEPS)
            train_and_evaluate(config, shared / "run")
            (shared / "done").touch()
    return shared / "run"
