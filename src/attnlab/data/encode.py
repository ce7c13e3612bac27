"""Record -> ids, with every problem counted: the per-example step of the pipeline.

An encoded example is a dict with ``index`` (its position in the split's file), ``inputs``
(int32 ids, no BOS/EOS) and, by task, ``targets`` (ids then EOS), ``labels`` (one per input
token) or ``label``; evaluation adds ``references`` (token lists). Three problems are flagged,
never hidden:

- ``empty``: no input tokens (or, for seq2seq, no target tokens). Always dropped.
- ``unknown``: the number of tokens that fell outside the vocabulary and became UNK. Kept.
- ``too_long``: more than ``max_len`` inputs or ``max_target_len`` targets (EOS included).
  Cut to fit when ``truncate`` is set (a cut target still ends in EOS), else left whole for
  the caller to drop.

``Counts`` adds the flags up; the pipeline logs them once per epoch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from attnlab.data.sources import Fields, get_field, text
from attnlab.data.vocab import Vocab
from attnlab.specials import EOS, UNK


@dataclasses.dataclass
class Counts:
    """Bad-data counters of one epoch (or one evaluation pass)."""

    examples: int = 0  # examples read
    empty: int = 0  # dropped: nothing to read or to predict
    with_unknown: int = 0  # examples with at least one UNK
    unknown_tokens: int = 0  # tokens mapped to UNK
    too_long: int = 0  # over max_len / max_target_len
    dropped: int = 0  # empty, plus too_long under long_policy="filter"

    def add(self, example: dict[str, Any], dropped: bool) -> None:
        self.examples += 1
        self.empty += int(example["empty"])
        self.with_unknown += int(example["unknown"] > 0)
        self.unknown_tokens += int(example["unknown"])
        self.too_long += int(example["too_long"])
        self.dropped += int(dropped)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return (
            f"{self.examples} examples read, {self.dropped} dropped: {self.empty} empty, "
            f"{self.too_long} over-long, {self.with_unknown} with unknown tokens "
            f"({self.unknown_tokens} tokens -> UNK)"
        )

    @property
    def bad(self) -> bool:
        return bool(self.empty or self.with_unknown or self.too_long)


class Encoder:
    """``encoder(index, record) -> example``; grain calls it through ``map_with_index``."""

    def __init__(
        self,
        fields: Fields,
        src_vocab: Vocab,
        tgt_vocab: Vocab | None,
        *,
        max_len: int,
        max_target_len: int,
        truncate: bool,
        with_references: bool = False,
    ) -> None:
        self.fields = fields
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.max_len, self.max_target_len = max_len, max_target_len
        self.truncate = truncate
        self.with_references = with_references

    def _tokens(self, vocab: Vocab, value: Any) -> list[str]:
        if self.fields.tokenized:
            return [text(token) for token in value]
        return vocab.tokenize(text(value))

    def __call__(self, index: int, record: Any) -> dict[str, Any]:
        fields = self.fields
        inputs = self.src_vocab.encode(
            self._tokens(self.src_vocab, get_field(record, fields.input))
        )
        unknown = inputs.count(UNK)
        empty = not inputs
        too_long = len(inputs) > self.max_len
        example: dict[str, Any] = {"index": int(index)}
        target = get_field(record, fields.target)
        if fields.task == "seq2seq":
            target_tokens = self._tokens(self.tgt_vocab, target)
            tokens = self.tgt_vocab.encode(target_tokens)
            unknown += tokens.count(UNK)
            empty = empty or not tokens
            targets = tokens + [EOS]
            too_long = too_long or len(targets) > self.max_target_len
            if self.truncate and len(targets) > self.max_target_len:
                targets = targets[: self.max_target_len - 1] + [EOS]
            example["targets"] = np.asarray(targets, np.int32)
            if self.with_references:
                example["references"] = self._references(record, target_tokens)
        elif fields.task == "tagging":
            labels = np.asarray(target, np.int32)
            if len(labels) != len(inputs):
                raise ValueError(
                    f"record {index}: {len(labels)} tags for {len(inputs)} input tokens"
                )
            example["labels"] = labels[: self.max_len] if self.truncate else labels
        else:
            example["label"] = int(target)
        if self.truncate:
            inputs = inputs[: self.max_len]
        example["inputs"] = np.asarray(inputs, np.int32)
        example.update(empty=empty, unknown=unknown, too_long=too_long)
        return example

    def _references(self, record: Any, target_tokens: list[str]) -> list[list[str]]:
        """Every acceptable target, as token lists (the record's own target if none)."""
        if self.fields.references is None:
            return [target_tokens]
        refs = get_field(record, self.fields.references)
        return [self._tokens(self.tgt_vocab, r) for r in refs] or [target_tokens]
