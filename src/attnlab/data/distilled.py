"""Sequence-level knowledge distillation data (Kim & Rush 2016; Gu et al. 2018): reading it.

A non-autoregressive student learns more easily from an autoregressive teacher's beam outputs
than from the references: the teacher picks one output per source, consistently, where the
data may hold several. ``write_distilled`` (``distilled_writer.py``) writes the teacher's
(source, output) pairs as a new training split and returns the data config that reads it:

    data.name = "distilled"
    data.distill_dir = "/abs/path/DIR"         # what write_distilled wrote
    data.distill_base = "cmudict_g2p"          # the original dataset; every other data.* key
                                               # keeps describing it

That dataset has the distilled ``train`` split and the original ``validation`` and ``test``
splits (so evaluation scores against the real references), the original vocabularies (the
same ids), and goes through the same grain pipeline as every dataset: deterministic,
resumable, with bad data (empty targets, tokens outside the vocabulary, over-long examples)
counted and dropped or kept exactly as for the original data.

``DIR`` holds ``manifest.json`` (format, the original data config, the number of pairs),
copies of the two vocabularies (checked against the original dataset's on every read), and the
TFDS array_record files of ``builders.distilled``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections

from attnlab.data.builders.distilled import DistilledSeq2Seq
from attnlab.data.config import DISTILLED, data_config
from attnlab.data.sources import BatchedSource, Fields, Prepared, quiet_progress
from attnlab.data.vocab import Vocab

FORMAT = "attnlab-distilled-1"
MANIFEST = "manifest.json"
VOCAB_FILES = {"source": "src_vocab.json", "target": "tgt_vocab.json"}
TRAIN_FIELDS = Fields("seq2seq", "inputs", "targets", tokenized=True)
# Keys that change how the data is batched, not which data it is: free to differ on reading.
_PIPELINE_KEYS = frozenset(
    {"data_dir", "max_len", "max_target_len", "long_policy", "bucket_boundaries"}
)


def distilled_base(cfg: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """The data config of the original dataset, once ``distill_dir`` holds data distilled
    from exactly that dataset (its manifest is read and checked)."""
    directory = _directory(cfg)
    base_cfg = data_config(**dict(cfg, name=cfg["distill_base"], distill_dir="", distill_base=""))
    check_same_dataset(read_manifest(directory), base_cfg, directory)
    return base_cfg


def read_distilled(cfg: Mapping[str, Any], base: Prepared) -> Prepared:
    """The distilled train split with the original dataset's vocabularies and other splits."""
    directory = _directory(cfg)
    for side, vocab in (("source", base.info.src_vocab), ("target", base.info.tgt_vocab)):
        if Vocab.load(directory / VOCAB_FILES[side]) != vocab:
            raise ValueError(
                f"{directory} was distilled with another {side} vocabulary than "
                f"{base.info.name} has now; write it again"
            )
    with quiet_progress():
        builder = DistilledSeq2Seq(data_dir=str(directory / "tfds"), file_format="array_record")
        train = BatchedSource(builder.as_data_source()["train"])
    sources = {**base.sources, "train": train}
    info = dataclasses.replace(
        base.info,
        name=f"{DISTILLED}({base.info.name})",
        split_sizes={split: len(source) for split, source in sources.items()},
        data_dir=str(directory),
    )
    return Prepared(
        info=info, sources=sources, fields=base.fields, split_fields={"train": TRAIN_FIELDS}
    )


def _directory(cfg: Mapping[str, Any]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(cfg["distill_dir"])))


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ValueError(
            f"data.distill_dir {str(directory)!r} holds no distilled data (no {MANIFEST}); "
            "write it with attnlab.data.write_distilled"
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an attnlab distilled-data manifest (format {FORMAT})")
    return manifest


def check_same_dataset(
    manifest: Mapping[str, Any], base: Mapping[str, Any], directory: Path
) -> None:
    """The data that ``directory`` was distilled from must be the dataset ``base`` names."""
    known = set(data_config().keys())
    written = data_config(**{k: v for k, v in manifest["base"].items() if k in known})
    for key in ["name", *sorted(known - _PIPELINE_KEYS - {"name"})]:
        if written[key] != base[key]:
            raise ValueError(
                f"{directory} was distilled from another dataset: data.{key} is "
                f"{written[key]!r} there, {base[key]!r} here; distill again "
                "(write_distilled with overwrite=True)"
            )
