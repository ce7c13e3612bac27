"""attnlab.train: the resumable training loop, checkpoints, metric writers, data parallelism.

- ``train_and_evaluate(config, workdir) -> dict``: train (resuming from ``workdir``), evaluate,
  return the final metrics.
- ``restore_model(workdir) -> (model, config)``: the latest checkpointed model, for decoding.
"""

from attnlab.train.loop import NonFiniteLossError, restore_model, train_and_evaluate

__all__ = ["NonFiniteLossError", "restore_model", "train_and_evaluate"]
