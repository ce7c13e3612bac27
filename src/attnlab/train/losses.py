"""Losses of the four model kinds, as sums and counts so that batches and devices add up.

The convention: every model family's loss is one function here, ``<family>_stats(model,
batch, config, *, train, key, step) -> Stats``, looked up by ``model.name`` (``STATS``). The
AT, tagger and classifier losses are written here; the NAT's asks the model's recipe
(``recipe.loss``), whose loss sits in its own module beside its canvas and decoding
(``attnlab.nat.<recipe>``).

Label-smoothed cross-entropy ("Attention Is All You Need", sec. 5.4) with smoothing ``e`` over
``V`` classes puts ``1 - e + e/V`` on the target and ``e/V`` on every other class:
``CE(z, y) = -sum_v q_v log softmax(z)_v``, ``q = (1 - e) onehot(y) + e/V``.
Masked positions (PAD, invalid rows) contribute nothing to the sums or the counts.

A recipe with a length head adds the length loss, an unsmoothed cross-entropy over length
classes averaged over sentences and weighted by ``length_loss_weight`` (fairseq: 0.1). A
statistic whose count is 0 (``ctc_impossible``, ``dag_impossible``) is a count: its value is
its sum.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections

from attnlab.choices import check_choice
from attnlab.nat.glancing import glancing_ratio
from attnlab.nn.config import MODEL_NAMES
from attnlab.ops.losses import smoothed_cross_entropy, token_stats
from attnlab.specials import BOS, PAD

__all__ = ["STATS", "Stats", "compute_stats", "mean", "shift_right", "smoothed_cross_entropy"]

# A statistic is a (sum, count) pair; its value is sum / max(count, 1).
Stats = dict[str, tuple[jax.Array, jax.Array]]


def shift_right(targets: jax.Array) -> jax.Array:
    """Teacher-forcing decoder input: ``[BOS] + targets[:-1]``."""
    bos = jnp.full_like(targets[:, :1], BOS)
    return jnp.concatenate([bos, targets[:, :-1]], axis=1)


def seq2seq_stats(model, batch, config, *, train, key=None, step=None) -> Stats:
    """The AT: teacher-forced, label-smoothed cross-entropy of every target token."""
    src, targets = batch["inputs"], batch["targets"]
    valid = batch["valid"].astype(bool)
    logits = model(src, shift_right(targets), train=train)
    smoothing = config.label_smoothing if train else 0.0
    return token_stats(logits, targets, (targets != PAD) & valid[:, None], smoothing)


def nat_stats(model, batch, config, *, train, key=None, step=None) -> Stats:
    """The NAT: its recipe's loss; in training with ``config.glancing``, at the glancing
    ratio of ``step`` (``glancing_ratio``)."""
    ratio = None
    if train and config.glancing:
        ratio = glancing_ratio(
            step,
            config.num_train_steps,
            config.glancing_start,
            config.glancing_end,
            config.glancing_anneal_fraction,
        )
    smoothing = config.label_smoothing if train else 0.0
    return model.recipe.loss(model, batch, train=train, key=key, ratio=ratio, smoothing=smoothing)


def tagger_stats(model, batch, config, *, train, key=None, step=None) -> Stats:
    """The tagger: label-smoothed cross-entropy of every token's label."""
    tokens, labels = batch["inputs"], batch["labels"]
    valid = batch["valid"].astype(bool)
    logits = model(tokens, train=train)
    smoothing = config.label_smoothing if train else 0.0
    return token_stats(logits, labels, (tokens != PAD) & valid[:, None], smoothing)


def classifier_stats(model, batch, config, *, train, key=None, step=None) -> Stats:
    """The classifier: label-smoothed cross-entropy of each sequence's label."""
    logits = model(batch["inputs"], train=train)
    smoothing = config.label_smoothing if train else 0.0
    return token_stats(logits, batch["label"], batch["valid"].astype(bool), smoothing)


STATS = {
    "seq2seq": seq2seq_stats,
    "nat": nat_stats,
    "tagger": tagger_stats,
    "classifier": classifier_stats,
}
assert tuple(STATS) == MODEL_NAMES


def compute_stats(
    model: object,
    batch: Mapping[str, jax.Array],
    config: ml_collections.ConfigDict,
    *,
    train: bool,
    key: jax.Array | None = None,
    step: jax.Array | None = None,
) -> tuple[jax.Array, Stats]:
    """Run ``model`` on ``batch`` and return (the loss to minimise, its statistics).

    ``key`` draws the training randomness (CMLM masking, glancing positions) and ``step``
    sets the glancing ratio (``glancing_ratio``); both are given in training only.
    """
    name = check_choice("model.name", config.model.name, MODEL_NAMES)
    stats = STATS[name](model, batch, config, train=train, key=key, step=step)
    loss = mean(stats["loss"])
    if "length_loss" in stats:
        loss = loss + config.length_loss_weight * mean(stats["length_loss"])
    return loss, stats


def mean(stat: tuple[jax.Array, jax.Array]) -> jax.Array:
    """``sum / count``, and 0 for an empty count."""
    total, count = stat
    return total / jnp.maximum(count, 1.0)
