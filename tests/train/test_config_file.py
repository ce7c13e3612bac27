"""One loader for task config files: ``file.py[:variant]``, as ``--config=`` reads it."""

import pytest
from absl import flags
from ml_collections import config_flags

from attnlab.train.config import load_config_file

CONFIG = """
import ml_collections


def get_config(arg=None):
    return ml_collections.ConfigDict({"variant": arg or "default", "size": 3})
"""


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "task.py").write_text(CONFIG)
    (tmp_path / "other.py").write_text(CONFIG)
    return tmp_path


def test_loads_the_variant_as_the_config_flag_does(config_dir):
    for spec in (f"{config_dir / 'task.py'}:small", str(config_dir / "task.py")):
        argv = ["train.py", f"--config={spec}"]
        parsed = flags.FlagValues()
        config_flags.DEFINE_config_file("config", flag_values=parsed, sys_argv=argv)
        parsed(argv)
        assert load_config_file(spec).to_dict() == parsed.config.to_dict()
    assert load_config_file(f"{config_dir / 'task.py'}:small").variant == "small"
    assert load_config_file(config_dir / "task.py").variant == "default"


def test_a_missing_file_names_the_config_files_beside_it(config_dir):
    with pytest.raises(ValueError) as err:
        load_config_file(f"{config_dir / 'tsak.py'}:small")
    assert (
        str(err.value)
        == f"config file {str(config_dir / 'tsak.py')!r} not found; valid: other.py, task.py"
    )
