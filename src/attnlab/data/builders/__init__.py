"""attnlab.data.builders: TFDS builders written as array_record, built offline without TensorFlow.

``make_builder(name, cfg, data_dir)`` picks the builder config that ``data.*`` describes.
Importing ``attnlab.data`` registers the four builders with TFDS under their names
(``cmudict_g2p``, ``cmudict_syllables``, ``cn_address``, ``synthetic_seq2seq``; none is a
catalog name), so ``tfds.builder(name)``, ``tfds.data_source(name)`` and, with TensorFlow
installed, ``tfds.load(name)`` find them; ``tfds:NAME`` reaches the rest of the catalog.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import tensorflow_datasets as tfds

from attnlab.choices import check_choice
from attnlab.data.builders.cmudict_g2p import CmudictG2P
from attnlab.data.builders.cmudict_syllables import CmudictSyllables
from attnlab.data.builders.cn_address import CnAddress
from attnlab.data.builders.common import config_name
from attnlab.data.builders.synthetic_seq2seq import SyntheticSeq2Seq, synthetic_config

BUILDERS = {
    "cmudict_g2p": CmudictG2P,
    "cmudict_syllables": CmudictSyllables,
    "cn_address": CnAddress,
    "synthetic_seq2seq": SyntheticSeq2Seq,
}


@contextlib.contextmanager
def _custom_config_allowed() -> Iterator[None]:
    """Silence TFDS's warning about configs outside BUILDER_CONFIGS: ours are deliberate."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Using custom data configuration")

    logger = logging.getLogger("absl")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _create(cls, config: Any, data_dir: str) -> tfds.core.DatasetBuilder:
    with _custom_config_allowed():
        return cls(data_dir=data_dir, config=config, file_format="array_record")


def _limited(cls, base: str, limit: int, data_dir: str) -> tfds.core.DatasetBuilder:
    if limit <= 0:
        return _create(cls, base, data_dir)  # a predefined config, by name
    predefined = cls.builder_configs[base]
    config = dataclasses.replace(
        predefined, name=config_name(base, limit), max_source_examples=limit
    )
    return _create(cls, config, data_dir)


def make_builder(name: str, cfg: Mapping[str, Any], data_dir: str) -> tfds.core.DatasetBuilder:
    """The builder of our dataset ``name`` configured by the resolved ``data.*`` keys."""
    limit = int(cfg["max_source_examples"])
    check_choice("builder", name, list(BUILDERS))
    if name == "cmudict_g2p":
        return _limited(CmudictG2P, "stress" if cfg["keep_stress"] else "phonemes", limit, data_dir)
    if name in ("cmudict_syllables", "cn_address"):
        return _limited(BUILDERS[name], "default", limit, data_dir)
    config = synthetic_config(  # synthetic_seq2seq
        cfg["synthetic_task"],
        int(cfg["synthetic_vocab_size"]),
        int(cfg["synthetic_min_length"]),
        int(cfg["synthetic_max_length"]),
        limit,
    )
    return _create(SyntheticSeq2Seq, config, data_dir)


__all__ = ["BUILDERS", "make_builder"]
