"""``tfds:NAME``: any TFDS catalog dataset as a seq2seq task, read through ``tfds.data_source``.

``data.name = "tfds:ted_hrlr_translate/pt_to_en"`` with ``data.input_key = "pt"`` and
``data.target_key = "en"`` (``a/b`` reads a nested feature) gives a translation task. The
text is tokenized by ``data.tokenizer``:

- ``char``: separate character vocabularies for inputs and targets;
- ``sentencepiece``: one joint unigram model of at most ``data.spm_vocab_size`` pieces over
  inputs and targets, with our special ids (as the Flax WMT example does).

Both are trained on the first ``data.vocab_examples`` training examples (file order; 0 = all)
and saved beside the data, under ``DATA_DIR/NAME/CONFIG/VERSION/``.

Preparing a catalog dataset runs its own TFDS builder, with ``file_format="array_record"``;
many catalog builders need network access and TensorFlow for that (the ``[tf]`` extra). Once
prepared, reading needs neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from attnlab.data.sources import (
    BatchedSource,
    DatasetInfo,
    Fields,
    Prepared,
    file_lock,
    get_field,
    iter_records,
    load_or_build_vocab,
    quiet_progress,
    text,
)
from attnlab.data.vocab import Vocab

DEFAULT_MAX_LEN = 128
_SPLITS = ("train", "validation", "test")


def _open_splits(tfds_name: str, root: str) -> dict[str, Any]:
    kwargs = {"data_dir": root, "builder_kwargs": {"file_format": "array_record"}}
    try:
        sources = {"train": tfds.data_source(tfds_name, split="train", **kwargs)}
    except ModuleNotFoundError as error:
        raise RuntimeError(
            f"preparing tfds:{tfds_name} needs {error.name!r}, which its TFDS builder imports; "
            "install the [tf] extra (pip install -e '.[tf]') or prepare it elsewhere"
        ) from error
    for split in _SPLITS[1:]:
        try:
            sources[split] = tfds.data_source(tfds_name, split=split, download=False, **kwargs)
        except (ValueError, KeyError):
            continue  # the dataset has no such split
    return sources


def prepare_catalog(name: str, cfg: Mapping[str, Any], root: str) -> Prepared:
    """Open a catalog dataset (building it first if needed) and its vocabularies."""
    tfds_name = name[len("tfds:") :]
    input_key, target_key = cfg["input_key"], cfg["target_key"]
    with file_lock(root, name), quiet_progress():
        raw = _open_splits(tfds_name, root)
        first = raw["train"][0] if len(raw["train"]) else {}
        if not input_key or not target_key:
            raise ValueError(
                f"{name} needs data.input_key and data.target_key; "
                f"valid: {', '.join(sorted(first))}"
            )
        for key in (input_key, target_key):
            try:
                get_field(first, key)
            except (KeyError, TypeError):
                raise ValueError(
                    f"{name} has no feature {key!r}; valid: {', '.join(sorted(first))}"
                ) from None
        limit = int(cfg["max_source_examples"])
        sources = {split: BatchedSource(src, limit) for split, src in raw.items()}
        full_name = tfds.builder(tfds_name, data_dir=root).info.full_name
        vocab_dir = Path(root) / full_name
        count = int(cfg["vocab_examples"])
        records = lambda: iter_records(sources["train"], count)  # noqa: E731
        if cfg["tokenizer"] == "sentencepiece":
            size = int(cfg["spm_vocab_size"])
            path = (
                vocab_dir
                / f"attnlab_spm{size}_{_safe(input_key)}-{_safe(target_key)}_n{count}.json"
            )
            joint = lambda: (  # noqa: E731
                text(get_field(r, k)) for r in records() for k in (input_key, target_key)
            )
            src_vocab = tgt_vocab = load_or_build_vocab(
                path, lambda: Vocab.train_sentencepiece(joint(), vocab_size=size)
            )
        else:
            vocabs = []
            for key in (input_key, target_key):
                path = vocab_dir / f"attnlab_char_{_safe(key)}_n{count}.json"
                vocabs.append(
                    load_or_build_vocab(
                        path,
                        lambda key=key: Vocab.build(
                            (list(text(get_field(r, key))) for r in records()), tokenizer="char"
                        ),
                    )
                )
            src_vocab, tgt_vocab = vocabs
    info = DatasetInfo(
        name=name,
        task="seq2seq",
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        num_classes=0,
        max_len=int(cfg["max_len"] or DEFAULT_MAX_LEN),
        max_target_len=int(cfg["max_target_len"] or DEFAULT_MAX_LEN),
        split_sizes={split: len(src) for split, src in sources.items()},
        label_names=(),
        data_dir=str(vocab_dir),
    )
    fields = Fields("seq2seq", input_key, target_key)
    return Prepared(info=info, sources=sources, fields=fields)


def _safe(key: str) -> str:
    return key.replace("/", "_")
