"""Dataset lookup by name, preparation on first use, and ``dataset_info``.

``prepare(cfg)`` builds the TFDS data (once, under a file lock, so parallel processes never
build the same dataset twice), opens every split as a ``tfds`` array_record data source, and
loads the vocabularies saved beside the data, building them from the training split the first
time. It dispatches on ``data.name``: our builders (here), ``tfds:NAME`` (``catalog.py``) and
``distilled`` (``distilled.py``); each returns a ``sources.Prepared``.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnlab.data.builders import BUILDERS, make_builder
from attnlab.data.catalog import prepare_catalog
from attnlab.data.config import data_config, data_dir
from attnlab.data.distilled import distilled_base, read_distilled
from attnlab.data.sources import (
    BatchedSource,
    DatasetInfo,
    Fields,
    Prepared,
    file_lock,
    iter_records,
    quiet_progress,
    text,
)
from attnlab.data.vocab import Vocab

# name -> (task fields, input tokenizer, target tokenizer, default max_len, max_target_len)
_BUILTIN = {
    "cmudict_g2p": (Fields("seq2seq", "word", "phonemes", "references"), "char", "space", 32, 32),
    "synthetic_seq2seq": (Fields("seq2seq", "inputs", "targets"), "space", "space", 0, 0),
    "cn_address": (Fields("tagging", "text", "tags"), "char", None, 64, 0),
    "cmudict_syllables": (Fields("classification", "word", "label"), "char", None, 32, 0),
}


def _prepare_builtin(name: str, cfg: Mapping[str, Any], root: str) -> Prepared:
    fields, in_tok, out_tok, max_len, max_target_len = _BUILTIN[name]
    if name == "synthetic_seq2seq":  # the longest source, and its target plus EOS
        max_len, max_target_len = cfg["synthetic_max_length"], cfg["synthetic_max_length"] + 1
    with file_lock(root, name), quiet_progress():
        builder = make_builder(name, cfg, root)
        builder.download_and_prepare()
        sources = {s: BatchedSource(src) for s, src in builder.as_data_source().items()}
        src_vocab, tgt_vocab = _builtin_vocabs(
            Path(builder.data_dir), sources["train"], fields, in_tok, out_tok
        )
    label_names: tuple[str, ...] = ()
    if fields.task != "seq2seq":
        feature = builder.info.features[fields.target]
        label_names = tuple((getattr(feature, "feature", None) or feature).names)
    info = DatasetInfo(
        name=name,
        task=fields.task,
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        num_classes=len(label_names),
        max_len=int(cfg["max_len"] or max_len),
        max_target_len=int(cfg["max_target_len"] or max_target_len),
        split_sizes={s: len(src) for s, src in sources.items()},
        label_names=label_names,
        data_dir=str(builder.data_dir),
    )
    return Prepared(info=info, sources=sources, fields=fields)


def _builtin_vocabs(
    directory: Path, train: BatchedSource, fields: Fields, in_tok: str, out_tok: str | None
) -> tuple[Vocab, Vocab | None]:
    """Source (and target) vocabularies saved beside the data; built in one pass if missing."""
    sides = [("src", fields.input, in_tok)]
    if out_tok is not None:
        sides.append(("tgt", fields.target, out_tok))
    paths = [directory / f"attnlab_{side}_vocab.json" for side, _, _ in sides]
    if not all(p.exists() for p in paths):
        counts = [collections.Counter() for _ in sides]
        for record in iter_records(train):
            for count, (_, key, tokenizer) in zip(counts, sides):
                value = text(record[key])
                count.update(value if tokenizer == "char" else value.split())
        for count, path, (_, _, tokenizer) in zip(counts, paths, sides):
            Vocab.from_counts(count, tokenizer=tokenizer).save(path)
    vocabs = [Vocab.load(p) for p in paths]
    return vocabs[0], (vocabs[1] if len(vocabs) > 1 else None)


_CACHE: dict[str, Prepared] = {}


def prepare(data_cfg: Any) -> Prepared:
    """The prepared dataset that ``data_cfg`` names (cached per process)."""
    cfg = data_config(**data_cfg)  # checked: a name is one of ours, tfds:NAME or distilled
    key = cfg.to_json(sort_keys=True) + "|" + data_dir(cfg)
    if key not in _CACHE:
        name = cfg["name"]
        if name in BUILDERS:
            prepared = _prepare_builtin(name, cfg, data_dir(cfg))
        elif name.startswith("tfds:"):
            prepared = prepare_catalog(name, cfg, data_dir(cfg))
        else:  # distilled: the manifest is checked before the original data is built
            prepared = read_distilled(cfg, prepare(distilled_base(cfg)))
        prepared.cfg = cfg
        _CACHE[key] = prepared
    return _CACHE[key]


def clear_cache() -> None:
    """Forget prepared datasets (tests that swap data under the same config use it)."""
    _CACHE.clear()


def dataset_info(data_cfg: Any) -> DatasetInfo:
    """The task, vocabularies, classes, lengths and split sizes; builds the data on first use."""
    return prepare(data_cfg).info
