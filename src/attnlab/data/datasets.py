"""Dataset lookup by name, preparation on first use, vocabularies, and ``DatasetInfo``.

``prepare(cfg)`` builds the TFDS data (once, under a file lock, so parallel processes never
build the same dataset twice), opens every split as a ``tfds`` array_record data source, and
loads the vocabularies saved beside the data, building them from the training split the first
time. A ``Prepared`` dataset knows which record fields hold the input, the target and the
references, so the pipeline stays the same for every dataset.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from attnlab.choices import check_choice
from attnlab.data.builders import BUILDERS, make_builder
from attnlab.data.config import DISTILLED, data_dir, resolve
from attnlab.data.vocab import Vocab

TASKS = ("seq2seq", "tagging", "classification")
KNOWN_NAMES = (*BUILDERS, DISTILLED, "tfds:NAME")
SPLIT_ALIASES = {"dev": "validation", "valid": "validation"}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset. ``num_classes`` is 0 for seq2seq."""

    name: str
    task: str
    src_vocab: Vocab
    tgt_vocab: Vocab | None
    num_classes: int
    max_len: int
    max_target_len: int
    split_sizes: dict[str, int]
    label_names: tuple[str, ...]
    data_dir: str


@dataclasses.dataclass(frozen=True)
class Fields:
    """Where a record keeps its parts; ``target`` is text, a tag list or a class id by task.

    With ``tokenized``, the input and target fields hold token lists rather than text, so no
    tokenizer runs (distilled data keeps the teacher's exact tokens).
    """

    task: str
    input: str
    target: str
    references: str | None = None
    tokenized: bool = False


@dataclasses.dataclass
class Prepared:
    info: DatasetInfo
    sources: dict[str, Any]
    fields: Fields
    cfg: Any = None  # the resolved data config
    split_fields: dict[str, Fields] = dataclasses.field(default_factory=dict)  # overrides

    def source(self, split: str) -> Any:
        return self.sources[self._split(split)]

    def fields_of(self, split: str) -> Fields:
        """The record layout of ``split`` (a distilled train split differs from the rest)."""
        return self.split_fields.get(self._split(split), self.fields)

    def _split(self, split: str) -> str:
        split = SPLIT_ALIASES.get(split, split)
        if split not in self.sources:
            raise ValueError(
                f"unknown split {split!r} for {self.info.name}; valid: {', '.join(self.sources)}"
            )
        return split


class BatchedSource:
    """A TFDS data source with grain's batched-read hook (``_getitems``).

    ``ArrayRecordDataSource.__getitems__`` reads many records in one call, about 8x faster
    than one ``__getitem__`` per record; grain's ``MapDataset._getitems`` calls it through
    this adapter.
    """

    def __init__(self, source: Any, limit: int = 0) -> None:
        self._source = source
        self._len = len(source) if limit <= 0 else min(limit, len(source))
        self._batched = True
        if self._len:
            try:  # the data source of tfds.testing.mock_data has a broken __getitems__
                source.__getitems__([0])
            except TypeError:
                self._batched = False

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Any:
        return self._source[int(index)]

    def _getitems(self, indices: Sequence[int]) -> list[Any]:
        if not self._batched:
            return [self._source[int(i)] for i in indices]
        return list(self._source.__getitems__([int(i) for i in indices]))

    def __repr__(self) -> str:
        return f"BatchedSource({self._source!r}, len={self._len})"


def text(value: Any) -> str:
    """A TFDS text value (bytes from array_record, str from mock data) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def get_field(record: Mapping[str, Any], path: str) -> Any:
    """``record[path]``, where ``a/b`` reads a nested feature."""
    value: Any = record
    for part in path.split("/"):
        value = value[part]
    return value


def iter_records(source: Any, limit: int = 0, chunk: int = 1024) -> Iterator[Any]:
    """Records of ``source`` in file order, read in batches (the first ``limit``, if > 0)."""
    n = len(source) if limit <= 0 else min(limit, len(source))
    for start in range(0, n, chunk):
        yield from source._getitems(range(start, min(n, start + chunk)))


@contextlib.contextmanager
def file_lock(directory: str, name: str) -> Iterator[None]:
    """An exclusive lock file ``directory/.attnlab-NAME.lock`` (released on exit or crash)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, ".attnlab-" + re.sub(r"[^\w.-]", "_", name) + ".lock")
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    from tensorflow_datasets.core.utils import tqdm_utils

    before = getattr(tqdm_utils, "_active", True)
    tfds.disable_progress_bar()
    try:
        yield
    finally:
        tfds.display_progress_bar(before)


def load_or_build_vocab(path: Path, build: Callable[[], Vocab]) -> Vocab:
    """The vocabulary saved at ``path``, building and saving it first if missing."""
    if not path.exists():
        build().save(path)
    return Vocab.load(path)


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
    cfg = resolve(data_cfg)
    key = cfg.to_json(sort_keys=True) + "|" + data_dir(cfg)
    if key not in _CACHE:
        name = cfg["name"]
        if name in BUILDERS:
            prepared = _prepare_builtin(name, cfg, data_dir(cfg))
        elif name.startswith("tfds:") and len(name) > len("tfds:"):
            from attnlab.data.catalog import prepare_catalog

            prepared = prepare_catalog(name, cfg, data_dir(cfg))
        elif name == DISTILLED:
            from attnlab.data.distilled import prepare_distilled

            prepared = prepare_distilled(cfg)
        else:
            check_choice("data.name", name, KNOWN_NAMES)  # raises: no dataset has that name
        prepared.cfg = cfg
        _CACHE[key] = prepared
    return _CACHE[key]


def clear_cache() -> None:
    """Forget prepared datasets (tests that swap data under the same config use it)."""
    _CACHE.clear()


def dataset_info(data_cfg: Any) -> DatasetInfo:
    """The task, vocabularies, classes, lengths and split sizes; builds the data on first use."""
    return prepare(data_cfg).info
