"""What every dataset is read through: records, their layout, and ``DatasetInfo``.

A prepared dataset (``Prepared``) holds one random-access data source per split, the record
layout (``Fields``: which field is the input, the target, the references) and the
``DatasetInfo`` a model needs. Builtin, catalog (``tfds:NAME``) and distilled datasets all
come out in this form, so the pipeline reads every one of them the same way.

Batched reads. Reading a list of records in one call is about 8x faster than one
``__getitem__`` per record on array_record. grain offers it through ``MapDataset._getitems``,
a private method, and asks sources for ``_getitems``: both are touched here and only here
(``read_records``, ``BatchedSource``), checked against the grain versions they were tested
with, with a one-record-at-a-time fallback elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.metadata
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grain
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from attnlab.data.vocab import Vocab

# grain versions whose private batched read (MapDataset._getitems) was tested here.
GRAIN_BATCHED_READ = ("0.2.",)
_BATCHED = importlib.metadata.version("grain").startswith(GRAIN_BATCHED_READ) and hasattr(
    grain.MapDataset, "_getitems"
)


def read_records(dataset: grain.MapDataset, indices: Sequence[int]) -> list[Any]:
    """``[dataset[i] for i in indices]``, in one batched read where grain offers it."""
    if _BATCHED:
        return list(dataset._getitems(list(indices)))
    return [dataset[int(i)] for i in indices]


TASKS = ("seq2seq", "tagging", "classification")
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
    """A TFDS data source (its first ``limit`` records) that reads many records in one call.

    ``ArrayRecordDataSource.__getitems__`` reads a list of records at once; ``read`` calls it,
    and grain's batched read reaches it through ``_getitems`` (see the module docstring).
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

    def read(self, indices: Sequence[int]) -> list[Any]:
        """The records at ``indices``, in one read."""
        if not self._batched:
            return [self._source[int(i)] for i in indices]
        return list(self._source.__getitems__([int(i) for i in indices]))

    _getitems = read  # the hook grain's batched read calls on a source

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
        yield from source.read(range(start, min(n, start + chunk)))


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
    """TFDS progress bars off inside, then as they were before.

    TFDS offers no public way to read whether its bars are on, so this reads its module flag
    ``tqdm_utils._active``, here and nowhere else; a TFDS without it counts as "on".
    """
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
