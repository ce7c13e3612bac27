"""Losses of the four model kinds, as sums and counts so that batches and devices add up.

Label-smoothed cross-entropy ("Attention Is All You Need", sec. 5.4) with smoothing ``e`` over
``V`` classes puts ``1 - e + e/V`` on the target and ``e/V`` on every other class:
``CE(z, y) = -sum_v q_v log softmax(z)_v``, ``q = (1 - e) onehot(y) + e/V``.
Masked positions (PAD, invalid rows) contribute nothing to the sums or the counts.

A NAT's statistics are its recipe's (``attnlab.nn.nat_recipes.nat_stats``); a recipe with a
length head adds the length loss, an unsmoothed cross-entropy over length classes averaged
over sentences and weighted by ``length_loss_weight`` (fairseq: 0.1). A statistic whose count
is 0 (``ctc_impossible``, ``dag_impossible``) is a count: its value is its sum.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections

from attnlab.choices import check_choice
from attnlab.nn.config import MODEL_NAMES
from attnlab.nn.glancing import glancing_ratio
from attnlab.nn.nat_recipes import nat_stats
from attnlab.ops.losses import smoothed_cross_entropy, token_stats
from attnlab.specials import BOS, PAD

__all__ = ["Stats", "compute_stats", "mean", "shift_right", "smoothed_cross_entropy"]

# A statistic is a (sum, count) pair; its value is sum / max(count, 1).
Stats = dict[str, tuple[jax.Array, jax.Array]]


def shift_right(targets: jax.Array) -> jax.Array:
    """Teacher-forcing decoder input: ``[BOS] + targets[:-1]``."""
    bos = jnp.full_like(targets[:, :1], BOS)
    return jnp.concatenate([bos, targets[:, :-1]], axis=1)


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
    smoothing = config.label_smoothing if train else 0.0
    valid = batch["valid"].astype(bool)
    if name == "seq2seq":
        src, targets = batch["inputs"], batch["targets"]
        logits = model(src, shift_right(targets), train=train)
        stats = token_stats(logits, targets, (targets != PAD) & valid[:, None], smoothing)
    elif name == "nat":
        ratio = None
        if train and config.glancing:
            ratio = glancing_ratio(
                step, config.num_train_steps, config.glancing_start, config.glancing_end
            )
        stats = nat_stats(model, batch, train=train, key=key, ratio=ratio, smoothing=smoothing)
    elif name == "tagger":
        tokens, labels = batch["inputs"], batch["labels"]
        logits = model(tokens, train=train)
        stats = token_stats(logits, labels, (tokens != PAD) & valid[:, None], smoothing)
    else:  # classifier
        logits = model(batch["inputs"], train=train)
        stats = token_stats(logits, batch["label"], valid, smoothing)
    loss = mean(stats["loss"])
    if "length_loss" in stats:
        loss = loss + config.length_loss_weight * mean(stats["length_loss"])
    return loss, stats


def mean(stat: tuple[jax.Array, jax.Array]) -> jax.Array:
    """``sum / count``, and 0 for an empty count."""
    total, count = stat
    return total / jnp.maximum(count, 1.0)
