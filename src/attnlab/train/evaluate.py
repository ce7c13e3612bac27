"""Evaluation during training: teacher-forced statistics, then decoding metrics.

- Teacher-forced: cross-entropy (no smoothing) and accuracy over every valid example of the
  split; NAT adds the length loss and length accuracy.
- Decoding (seq2seq and NAT only): the first ``eval_decode_examples`` examples are decoded
  (AT: ``decode_method``, ``beam_size``, ``length_penalty``; NAT: ``nat_strategy``, by default
  the recipe's own) and scored with G2P word and phoneme error rates against every reference
  (``attnlab.metrics``).

Both return None when ``should_stop()`` turns true mid-way (SIGTERM), so that the caller can
save and redo the evaluation after resuming.

Many processes: each gets its own rows of every evaluation batch (``take_rows`` with
``process_rows``). Teacher-forced statistics come from one sharded step over the global batch;
each process decodes only its rows, and the per-example error counts of all processes are
gathered (``gather_rows``) before the rates are taken, so the numbers equal one process's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections
import numpy as np
from jax.sharding import Mesh

from attnlab.decode.at import at_decode
from attnlab.metrics.edit import closest_reference, reference_sets
from attnlab.nat.decoding import nat_decode
from attnlab.specials import PAD
from attnlab.train.sharding import gather_rows, shard_batch
from attnlab.train.steps import add_stats, stat_means

Batch = Mapping[str, Any]


def teacher_forced_metrics(
    eval_step: Callable, state: Any, batches: Iterable[Batch], mesh: Mesh, *, should_stop
) -> dict[str, float] | None:
    """``{"eval_loss", "eval_accuracy", ...}`` summed over the whole split.

    ``batches`` holds this process's rows of every global batch (all of them on one process).
    """
    total = None
    for batch in batches:
        if should_stop():
            return None
        total = add_stats(total, eval_step(state, shard_batch(batch, mesh)))
    if total is None:
        raise ValueError("the evaluation split is empty")
    means = stat_means(total)
    means.pop("nll", None)  # without smoothing the loss is the NLL
    return {f"eval_{name}": value for name, value in means.items()}


def _decode(model: Any, src: np.ndarray, targets: np.ndarray, config: ml_collections.ConfigDict):
    max_len = int(targets.shape[1])  # the data's longest target (with EOS), <= model.max_len
    if config.model.name == "seq2seq":
        return at_decode(
            model,
            src,
            method=config.decode_method,
            beam_size=config.beam_size,
            max_len=max_len,
            length_penalty=config.length_penalty,
        )
    ref_lengths = np.sum(targets != PAD, axis=-1).astype(np.int32)
    strategy = model.recipe.strategy_or_default(config.nat_strategy)
    return nat_decode(model, src, strategy, ref_lengths=ref_lengths, max_len=max_len).tokens


def decoding_metrics(
    model: Any,
    batches: Iterable[Batch],
    config: ml_collections.ConfigDict,
    tgt_vocab: Any,
    *,
    should_stop,
    global_batch_size: int | None = None,
    rows: slice = slice(None),
) -> dict[str, float] | None:
    """``{"eval_wer", "eval_per"}`` of decoded outputs; empty for taggers and classifiers.

    The first ``eval_decode_examples`` examples of the split are decoded. With many
    processes, ``batches`` holds rows ``rows`` of each global batch of ``global_batch_size``.
    """
    limit = int(config.eval_decode_examples)
    if config.model.name not in ("seq2seq", "nat") or limit <= 0:
        return {}
    counts = []  # per row: (decoded, wrong, edits, reference length)
    for index, batch in enumerate(batches):
        size = global_batch_size or len(batch["inputs"])
        if index * size >= limit:  # the same decision on every process
            break
        numbers = np.arange(size)[rows] + index * size  # the rows' places in the split
        if should_stop():
            return None
        valid = np.asarray(batch["valid"]) & (numbers < limit)
        found = np.zeros((len(numbers), 4), np.int64)
        if valid.any():
            tokens = np.asarray(_decode(model, batch["inputs"], batch["targets"], config))
        for i in np.flatnonzero(valid):
            hyp = tuple(tgt_vocab.decode([int(t) for t in tokens[i]]))
            if "references" in batch:
                refs = [list(r) for r in batch["references"][i]]
            else:
                refs = [tgt_vocab.decode([int(t) for t in batch["targets"][i]])]
            choices = reference_sets([refs])[0]
            k, edits = closest_reference(hyp, choices)
            found[i] = (1, hyp not in choices, edits, len(choices[k]))
        counts.append(found)
    if not counts:
        return {}
    decoded, wrong, edits, length = gather_rows(np.concatenate(counts)).sum(axis=0)
    if length == 0:
        raise ValueError("per: the chosen references are all empty, the rate is undefined")
    return {"eval_wer": float(wrong / decoded), "eval_per": float(edits / length)}
