"""attnlab.train: the resumable training loop, checkpoints, metric writers, data parallelism.

- ``train_and_evaluate(config, workdir) -> dict``: train (resuming from ``workdir``), evaluate,
  return the final metrics.
- ``restore_model(workdir) -> (model, config)``: the latest checkpointed model (or a chosen
  ``step``, or the average of the last ``average_last``), for decoding.
"""

from attnlab.train.loop import NonFiniteLossError, train_and_evaluate
from attnlab.train.restore import restore_model

__all__ = ["NonFiniteLossError", "restore_model", "train_and_evaluate"]
