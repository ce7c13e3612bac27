"""Shared fixture: a temporary TFDS data dir per test module, for tiny builds made in seconds."""

import pytest


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """A fresh TFDS data dir per test module (tests never touch ~/.cache/attnlab)."""
    return str(tmp_path_factory.mktemp("tfds"))
