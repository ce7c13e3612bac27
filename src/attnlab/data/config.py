"""The ``data.*`` config keys, their defaults, and their one check.

``data_config(**overrides)`` gives every key, checked by ``check_data``: the data layer's
every check that needs no data. The data functions accept a partial ``ConfigDict`` (or dict):
missing keys take these defaults, unknown keys are an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from attnlab.choices import check_choice, check_choices
from attnlab.data.builders import BUILDERS
from attnlab.data.builders.synthetic_seq2seq import TASKS as SYNTHETIC_TASKS

LONG_POLICIES = ("filter", "truncate")
SEQ_TOKENIZERS = ("char", "sentencepiece")  # for tfds:NAME text features
CHOICES = {
    "long_policy": LONG_POLICIES,
    "tokenizer": SEQ_TOKENIZERS,
    "synthetic_task": SYNTHETIC_TASKS,
}
DISTILLED = "distilled"  # data.name of a dataset written by attnlab.data.write_distilled
DATASET_NAMES = (*BUILDERS, DISTILLED, "tfds:NAME")
DEFAULT_DATA_DIR = "~/.cache/attnlab/tfds"

_DEFAULTS: dict[str, Any] = {
    # cmudict_g2p | cmudict_syllables | synthetic_seq2seq | cn_address | tfds:NAME[/CONFIG]
    # | distilled (see distill_dir)
    "name": "cmudict_g2p",
    # "" = $ATTNLAB_DATA_DIR, else ~/.cache/attnlab/tfds
    "data_dir": "",
    # Longest input (tokens) and target (tokens + EOS); 0 = the dataset's default.
    "max_len": 0,
    "max_target_len": 0,
    # Training examples longer than that are dropped ("filter") or cut ("truncate").
    # Evaluation always truncates (a test set never loses examples) and counts it.
    "long_policy": "filter",
    # Optional length buckets for training batches: ascending lengths; each bucket pads to
    # (min(b, max_len), min(b, max_target_len)) and a last bucket pads to the maxima.
    "bucket_boundaries": (),
    # Build a small version from the first N source entries of a stable sample (0 = all).
    # For synthetic_seq2seq and cn_address: the number of examples drawn.
    "max_source_examples": 0,
    # cmudict_g2p: keep the stress digits of the phonemes.
    "keep_stress": False,
    # synthetic_seq2seq: copy | reverse | sort, symbols, source length range.
    "synthetic_task": "reverse",
    "synthetic_vocab_size": 16,
    "synthetic_min_length": 1,
    "synthetic_max_length": 16,
    # tfds:NAME: feature keys, tokenizer (char | sentencepiece), SentencePiece size, and how
    # many training examples (file order) build the vocabulary (0 = all).
    "input_key": "",
    "target_key": "",
    "tokenizer": "char",
    "spm_vocab_size": 8000,
    "vocab_examples": 200000,
    # distilled: the directory write_distilled wrote, and the name of the original dataset,
    # whose vocabularies and validation/test splits it uses (every other key describes that
    # original dataset). Both are required with name="distilled" and refused otherwise.
    "distill_dir": "",
    "distill_base": "",
}


def data_config(**overrides: Any) -> ml_collections.ConfigDict:
    """Every ``data.*`` key with its default, updated by ``overrides``, checked (``check_data``)."""
    cfg = {**_DEFAULTS, **overrides}
    cfg["bucket_boundaries"] = tuple(int(b) for b in cfg["bucket_boundaries"] or ())
    check_data(cfg)
    return ml_collections.ConfigDict(cfg)


def check_data(cfg: Mapping[str, Any]) -> None:
    """Every check of a data section that needs no data: its keys, the dataset's name, the
    string choices, the sizes and buckets, and the distilled pair of keys. The first problem
    is a one-line ValueError naming the valid values."""
    unknown = sorted(set(cfg) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown data key {unknown[0]!r}; valid: {', '.join(_DEFAULTS)}")
    name = cfg["name"]
    if not (name.startswith("tfds:") and len(name) > len("tfds:")):
        check_choice("data.name", name, DATASET_NAMES)
    check_choices(cfg, CHOICES, prefix="data.")
    for key in ("max_len", "max_target_len", "max_source_examples", "vocab_examples"):
        if int(cfg[key]) < 0:
            raise ValueError(f"data.{key} must be >= 0, got {cfg[key]}")
    bounds = cfg["bucket_boundaries"]
    if any(b < 1 for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise ValueError(f"data.bucket_boundaries must be ascending positive ints, got {bounds}")
    if name != DISTILLED:
        if cfg["distill_dir"] or cfg["distill_base"]:
            raise ValueError(
                f"data.distill_dir and data.distill_base are only read with data.name "
                f"{DISTILLED!r}, not {name!r}; leave them empty"
            )
    elif not cfg["distill_dir"] or not cfg["distill_base"]:
        raise ValueError(
            f"data.name {DISTILLED!r} needs data.distill_dir and data.distill_base; "
            "attnlab.data.write_distilled returns such a config"
        )
    elif cfg["distill_base"] == DISTILLED:
        raise ValueError("data.distill_base must name the original dataset, not 'distilled'")


def data_dir(cfg: Mapping[str, Any]) -> str:
    """``data.data_dir``, else ``$ATTNLAB_DATA_DIR``, else ``~/.cache/attnlab/tfds``."""
    chosen = cfg["data_dir"] or os.environ.get("ATTNLAB_DATA_DIR") or DEFAULT_DATA_DIR
    return os.path.abspath(os.path.expanduser(chosen))
