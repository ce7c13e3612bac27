"""``distilled``: a training split of (input tokens, target tokens) pairs, stored as token lists.

Sequence-level knowledge distillation (Kim & Rush 2016) trains a student on a teacher's
outputs. The pairs are written exactly as given, one record per pair in the given order
(``disable_shuffling``), with the tokens kept as lists of strings rather than joined into
text, so that no tokenizer runs on the way back in: a SentencePiece teacher's pieces are read
back as the very same pieces, even where they are not the canonical segmentation.

The builder only writes and reads the train split; ``attnlab.data.distilled`` adds the
original dataset's vocabularies and validation/test splits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow_datasets as tfds

from attnlab.data.builders.common import AttnlabBuilder

PairTokens = tuple[list[str], list[str]]


class DistilledSeq2Seq(AttnlabBuilder, skip_registration=True):
    """Writes ``pairs`` (when given) as the train split; reads it back when not.

    Not registered with TFDS: it has no data of its own; each distilled directory is one.
    """

    name = "distilled_seq2seq"
    DESCRIPTION = __doc__

    def __init__(self, *, pairs: Iterable[PairTokens] | None = None, **kwargs: Any) -> None:
        self._pairs = pairs
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        tokens = tfds.features.Sequence(tfds.features.Text())
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict({"inputs": tokens, "targets": tokens}),
            supervised_keys=None,
            disable_shuffling=True,  # record i is pair i
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        if self._pairs is None:
            raise ValueError("DistilledSeq2Seq writes only when constructed with pairs=")
        return {"train": self._generate_examples(self._pairs)}

    def _generate_examples(self, pairs: Iterable[PairTokens]) -> Iterator[tuple[int, dict]]:
        for index, (inputs, targets) in enumerate(pairs):
            yield index, {"inputs": list(inputs), "targets": list(targets)}
