"""attnlab.data: TFDS builders (array_record), vocabularies, and the grain input pipeline.

- ``dataset_info(data_cfg)``: task, vocabularies, classes, lengths, split sizes.
- ``make_train_iterator(data_cfg, batch_size=, seed=, rows=)``: endless, resumable training
  batches; ``rows`` is this process's slice of each global batch.
- ``make_eval_batches(data_cfg, split, batch_size=)``: one pass, in file order;
  ``take_rows(batch, rows)`` is one process's part of a batch.
- ``data_config(**overrides)``: every ``data.*`` key with its default.
- ``write_distilled(data_cfg, pairs, name)``: a teacher's outputs as a new training split
  (sequence-level knowledge distillation); returns the data config that reads it.
"""

from attnlab.data.config import data_config
from attnlab.data.datasets import dataset_info
from attnlab.data.distilled_writer import write_distilled
from attnlab.data.pipeline import make_eval_batches, make_train_iterator, take_rows
from attnlab.data.sources import DatasetInfo
from attnlab.data.vocab import Vocab

__all__ = [
    "DatasetInfo",
    "Vocab",
    "data_config",
    "dataset_info",
    "make_eval_batches",
    "make_train_iterator",
    "take_rows",
    "write_distilled",
]
