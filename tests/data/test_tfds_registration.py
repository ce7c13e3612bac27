"""Our datasets are TFDS datasets: after ``import attnlab.data``, TFDS finds them by name."""

import subprocess
import sys

import pytest
import tensorflow_datasets as tfds
from data_testing import tiny

from attnlab.data.builders import BUILDERS
from attnlab.data.builders.synthetic_seq2seq import synthetic_config
from attnlab.data.datasets import prepare
from attnlab.data.sources import iter_records

NAMES = ("cmudict_g2p", "cmudict_syllables", "cn_address", "synthetic_seq2seq")
LOOKUP = """
import sys
import tensorflow_datasets as tfds
try:
    tfds.builder("cmudict_g2p", data_dir=sys.argv[1])
except tfds.core.registered.DatasetNotFoundError:
    print("not found before")
import attnlab.data
print(type(tfds.builder("cmudict_g2p", data_dir=sys.argv[1])).__name__, "after")
"""


def test_import_registers_the_builders_under_their_names(data_dir):
    out = subprocess.run(
        [sys.executable, "-c", LOOKUP, data_dir], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["not found before", "CmudictG2P after"]
    assert set(NAMES) == set(BUILDERS)
    for name in NAMES:
        assert isinstance(tfds.builder(name, data_dir=data_dir), BUILDERS[name])


def small_synthetic():
    return synthetic_config("reverse", 8, 2, 6, 300)


def test_tfds_data_source_reads_what_our_pipeline_reads(tmp_path, data_dir):
    kwargs = {"config": small_synthetic(), "file_format": "array_record"}
    source = tfds.data_source(
        "synthetic_seq2seq", split="test", data_dir=str(tmp_path), builder_kwargs=kwargs
    )
    cfg = tiny(data_dir, "synthetic_seq2seq", synthetic_task="reverse", synthetic_vocab_size=8)
    cfg.update(synthetic_min_length=2, synthetic_max_length=6)
    ours = list(iter_records(prepare(cfg).source("test")))
    assert len(source) == len(ours) > 0
    assert [source[i] for i in range(len(source))] == ours


def test_tfds_load_finds_and_prepares_the_dataset(tmp_path):
    """``tfds.load`` returns a ``tf.data.Dataset``, so it needs the ``[tf]`` extra."""
    kwargs = dict(
        split="test",
        data_dir=str(tmp_path),
        builder_kwargs={"config": small_synthetic(), "file_format": "array_record"},
    )
    try:
        import tensorflow  # noqa: F401
    except ImportError:  # the lookup and the build succeed; only tf.data is missing
        with pytest.raises(ModuleNotFoundError) as err:
            tfds.load("synthetic_seq2seq", **kwargs)
        assert err.value.name == "tensorflow"
        built = tfds.builder("synthetic_seq2seq", data_dir=str(tmp_path), config=small_synthetic())
        assert built.info.splits["test"].num_examples > 0
        return
    dataset = tfds.load("synthetic_seq2seq", **kwargs)
    source = tfds.data_source("synthetic_seq2seq", **kwargs)
    assert sorted(bytes(x["inputs"].numpy()) for x in dataset) == sorted(
        source[i]["inputs"] for i in range(len(source))
    )
