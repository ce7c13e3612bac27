"""The grain input pipeline: deterministic, resumable, fixed-shape batches.

Training reads an endless stream built with grain::

    MapDataset.source(tfds data source)      # array_record, random access
      .map_with_index(Encoder)               # tokenize, flag empty / unknown / over-long
      .shuffle(seed=shuffle_seed(seed))      # a new permutation every epoch, from seed + epoch
      .repeat()                              # epochs follow one another

Stream position ``p`` is example ``p mod N`` of epoch ``p // N`` (N = training examples), so
the position alone says where a run is. ``TrainIterator`` walks the stream, drops empty (and,
with ``long_policy="filter"``, over-long) examples, and pads batches on the right to fixed
shapes: ``[B, max_len]`` inputs and ``[B, max_target_len]`` targets, or, with
``bucket_boundaries``, the shape of the example's bucket. A bucket emits a batch when it holds
``B`` examples, so there are at most ``len(bucket_boundaries) + 1`` distinct shapes.

Many processes: ``B`` is the *global* batch and every process walks the same stream with the
same seed, so every process computes the same plan (which stream positions, and which bucket,
make global batch ``n``). ``rows`` picks this process's rows of each global batch: only those
are padded and returned, so batch shapes agree across processes by construction and the
state (the plan's position) is the same on every process.

Its state is JSON: the next stream position, the positions waiting in unfinished buckets, the
epoch and its bad-data counts. Restoring it re-reads those positions, so a resumed run yields
exactly the batches of an uninterrupted one. Bad-data counts are logged once per epoch (a
warning when any are non-zero) and kept in ``TrainIterator.reports``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np
from absl import logging

from attnlab.data.datasets import prepare
from attnlab.data.encode import Counts, Encoder
from attnlab.data.sources import Prepared, read_records

_STATE_VERSION = 1


def shuffle_seed(seed: int) -> int:
    """A 32-bit shuffle seed spread out from ``seed``.

    grain reshuffles epoch ``e`` with ``shuffle_seed + e``; hashing keeps seeds 0 and 1 from
    seeing the same permutations one epoch apart.
    """
    digest = hashlib.sha256(f"attnlab-shuffle:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def bucket_shapes(
    boundaries: Sequence[int], max_len: int, max_target_len: int
) -> list[tuple[int, int]]:
    """``(input length, target length)`` of each bucket; the last one is the maximum."""
    shapes = []
    for b in boundaries:
        shape = (min(b, max_len), min(b, max_target_len))
        if shape not in shapes and shape != (max_len, max_target_len):
            shapes.append(shape)
    return shapes + [(max_len, max_target_len)]


def pad_batch(
    examples: Sequence[dict[str, Any]], batch_size: int, shape: tuple[int, int], task: str
) -> dict[str, Any]:
    """Right-pad ``examples`` into ``batch_size`` rows; missing rows have ``valid=False``."""
    if len(examples) > batch_size:
        raise ValueError(f"{len(examples)} examples do not fit a batch of {batch_size}")
    src_len, tgt_len = shape
    inputs = np.zeros((batch_size, src_len), np.int32)
    batch: dict[str, Any] = {"inputs": inputs}
    if task == "seq2seq":
        batch["targets"] = np.zeros((batch_size, tgt_len), np.int32)
    elif task == "tagging":
        batch["labels"] = np.zeros((batch_size, src_len), np.int32)
    else:
        batch["label"] = np.zeros((batch_size,), np.int32)
    for row, ex in enumerate(examples):
        inputs[row, : len(ex["inputs"])] = ex["inputs"]
        if task == "seq2seq":
            batch["targets"][row, : len(ex["targets"])] = ex["targets"]
        elif task == "tagging":
            batch["labels"][row, : len(ex["labels"])] = ex["labels"]
        else:
            batch["label"][row] = ex["label"]
    batch["valid"] = np.arange(batch_size) < len(examples)
    return batch


def _encoder(prepared: Prepared, split: str, *, truncate: bool, references: bool) -> Encoder:
    info = prepared.info
    return Encoder(
        prepared.fields_of(split),
        info.src_vocab,
        info.tgt_vocab,
        max_len=info.max_len,
        max_target_len=info.max_target_len,
        truncate=truncate,
        with_references=references,
    )


class TrainIterator(grain.DatasetIterator):
    """Endless fixed-shape training batches with a JSON ``get_state`` / ``set_state``."""

    def __init__(
        self,
        stream: grain.MapDataset,
        *,
        epoch_size: int,
        batch_size: int,
        shapes: list[tuple[int, int]],
        task: str,
        drop_long: bool,
        name: str,
        rows: slice = slice(None),
    ) -> None:
        super().__init__()
        if epoch_size == 0:
            raise ValueError(f"{name}: the training split is empty")
        self._stream, self._epoch_size = stream, epoch_size
        self._batch_size, self._shapes, self._task = batch_size, shapes, task
        self._drop_long, self._name = drop_long, name
        self._rows = range(batch_size)[rows]  # this process's rows of every global batch
        if not len(self._rows):
            raise ValueError(f"rows {rows} select nothing from a batch of {batch_size}")
        self._chunk_start, self._chunk = 0, []
        self.reports: list[tuple[int, dict[str, int]]] = []  # (epoch, counts) of ended epochs
        self._reset(0, 0, Counts(), [[] for _ in shapes])

    def _reset(self, position: int, epoch: int, counts: Counts, pending: list[list[int]]):
        self._position, self._epoch, self._counts = position, epoch, counts
        self._pending = pending  # stream positions waiting in each bucket
        self._pending_examples = [self._read_many(p) for p in pending]

    # --- reading the stream -----------------------------------------------------------------
    def _read_many(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        return read_records(self._stream, positions) if positions else []

    def _read(self, position: int) -> dict[str, Any]:
        offset = position - self._chunk_start
        if not 0 <= offset < len(self._chunk):
            self._chunk_start, offset = position, 0
            self._chunk = self._read_many(range(position, position + self._batch_size))
        return self._chunk[offset]

    def _bucket(self, example: dict[str, Any]) -> int:
        n_in = len(example["inputs"])
        n_out = len(example["targets"]) if "targets" in example else 0
        for i, (s, t) in enumerate(self._shapes):
            if n_in <= s and (self._task != "seq2seq" or n_out <= t):
                return i
        return len(self._shapes) - 1  # the maxima: what does not fit was truncated or dropped

    def _end_epoch(self) -> None:
        counts = self._counts
        if counts.examples and counts.dropped == counts.examples:
            raise ValueError(
                f"data {self._name}: every training example was dropped in epoch {self._epoch} "
                f"({counts.describe()}); raise max_len / max_target_len or use "
                "long_policy='truncate'"
            )
        log = logging.warning if counts.bad else logging.info
        log("data %s, epoch %d: %s", self._name, self._epoch, counts.describe())
        self.reports.append((self._epoch, counts.as_dict()))
        self._epoch, self._counts = self._epoch + 1, Counts()

    def __next__(self) -> dict[str, Any]:
        while True:
            position = self._position
            while position // self._epoch_size > self._epoch:
                self._end_epoch()
            example = self._read(position)
            self._position = position + 1
            drop = example["empty"] or (self._drop_long and example["too_long"])
            self._counts.add(example, drop)
            if drop:
                continue
            b = self._bucket(example)
            self._pending[b].append(position)
            self._pending_examples[b].append(example)
            if len(self._pending[b]) == self._batch_size:
                mine = [self._pending_examples[b][r] for r in self._rows]
                batch = pad_batch(mine, len(self._rows), self._shapes[b], self._task)
                self._pending[b], self._pending_examples[b] = [], []
                return batch

    # --- position ---------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch of the next example to be read."""
        return self._position // self._epoch_size

    @property
    def counts(self) -> dict[str, int]:
        """Bad-data counts of the current epoch so far."""
        return self._counts.as_dict()

    def get_state(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "dataset": self._name,
            "epoch_size": self._epoch_size,
            "batch_size": self._batch_size,
            "position": self._position,
            "epoch": self._epoch,
            "counts": self._counts.as_dict(),
            "pending": [list(p) for p in self._pending],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        expected = {
            "version": _STATE_VERSION,
            "dataset": self._name,
            "epoch_size": self._epoch_size,
            "batch_size": self._batch_size,
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(
                    f"data state does not match this pipeline: {key} is {state.get(key)!r}, "
                    f"expected {value!r}"
                )
        if len(state["pending"]) != len(self._shapes):
            raise ValueError(
                f"data state has {len(state['pending'])} buckets, this pipeline {len(self._shapes)}"
            )
        pending = [[int(p) for p in bucket] for bucket in state["pending"]]
        self._chunk_start, self._chunk = 0, []
        self._reset(int(state["position"]), int(state["epoch"]), Counts(**state["counts"]), pending)

    def __str__(self) -> str:
        return f"TrainIterator({self._name}, position={self._position})"


def make_train_iterator(
    data_cfg: Any, *, batch_size: int, seed: int, rows: slice = slice(None)
) -> TrainIterator:
    """Endless shuffled training batches of fixed shapes; see the module docstring.

    ``batch_size`` is the global batch; ``rows`` the slice of it this process returns.
    """
    prepared = prepare(data_cfg)
    info, cfg = prepared.info, prepared.cfg
    truncate = cfg["long_policy"] == "truncate"
    return build_train_iterator(
        prepared.source("train"),
        _encoder(prepared, "train", truncate=truncate, references=False),
        batch_size=batch_size,
        seed=seed,
        shapes=bucket_shapes(cfg["bucket_boundaries"], info.max_len, info.max_target_len),
        drop_long=not truncate,
        name=info.name,
        rows=rows,
    )


def build_train_iterator(
    source: Any,
    encoder: Encoder,
    *,
    batch_size: int,
    seed: int,
    shapes: list[tuple[int, int]],
    drop_long: bool,
    name: str,
    rows: slice = slice(None),
) -> TrainIterator:
    """The grain stream over any random-access ``source`` of records, and its iterator."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (drop_long or encoder.truncate):
        raise ValueError("over-long examples must be dropped or truncated to fit the batch")
    stream = (
        grain.MapDataset.source(source)
        .map_with_index(encoder)
        .shuffle(seed=shuffle_seed(seed))
        .repeat()
    )
    return TrainIterator(
        stream,
        epoch_size=len(source),
        batch_size=batch_size,
        shapes=shapes,
        task=encoder.fields.task,
        drop_long=drop_long,
        name=name,
        rows=rows,
    )


class EvalBatches(list):
    """A list of evaluation batches with the pass's bad-data ``counts``."""

    counts: dict[str, int]


def make_eval_batches(data_cfg: Any, split: str, *, batch_size: int) -> EvalBatches:
    """One pass over ``split`` in file order, ``[B, max_len]`` / ``[B, max_target_len]``.

    Over-long examples are truncated (a test set never loses examples) and empty ones dropped,
    both counted and logged. The last batch is padded with ``valid=False`` rows. Every batch
    has ``index`` (the example's position in the split) and, for seq2seq, ``references``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prepared = prepare(data_cfg)
    info = prepared.info
    source = prepared.source(split)
    encoder = _encoder(prepared, split, truncate=True, references=info.task == "seq2seq")
    examples = grain.MapDataset.source(source).map_with_index(encoder)
    shape = (info.max_len, info.max_target_len)
    counts, batches, kept = Counts(), EvalBatches(), []
    for start in range(0, len(source), batch_size):
        stop = min(len(source), start + batch_size)
        for example in read_records(examples, range(start, stop)):
            counts.add(example, dropped=example["empty"])
            if not example["empty"]:
                kept.append(example)
        if len(kept) >= batch_size:
            batches.append(_eval_batch(kept[:batch_size], batch_size, shape, info.task))
            kept = kept[batch_size:]
    if kept:
        batches.append(_eval_batch(kept, batch_size, shape, info.task))
    batches.counts = counts.as_dict()
    log = logging.warning if counts.bad else logging.info
    log("data %s, %s split: %s", info.name, split, counts.describe())
    return batches


def _eval_batch(rows, batch_size: int, shape: tuple[int, int], task: str) -> dict[str, Any]:
    batch = pad_batch(rows, batch_size, shape, task)
    batch["index"] = np.full((batch_size,), -1, np.int64)
    batch["index"][: len(rows)] = [ex["index"] for ex in rows]
    if task == "seq2seq":
        batch["references"] = [ex["references"] for ex in rows] + [[]] * (batch_size - len(rows))
    return batch


def take_rows(batch: dict[str, Any], rows: slice) -> dict[str, Any]:
    """Rows ``rows`` of every field of ``batch`` (arrays and lists alike)."""
    return {key: value[rows] for key, value in batch.items()}
