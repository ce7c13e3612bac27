"""Losses of the four model kinds, as sums and counts so that batches and devices add up.

Label-smoothed cross-entropy ("Attention Is All You Need", sec. 5.4) with smoothing ``e`` over
``V`` classes puts ``1 - e + e/V`` on the target and ``e/V`` on every other class:
``CE(z, y) = -sum_v q_v log softmax(z)_v``, ``q = (1 - e) onehot(y) + e/V``.
Masked positions (PAD, invalid rows) contribute nothing to the sums or the counts.

NAT adds the length loss, an unsmoothed cross-entropy over length classes averaged over
sentences and weighted by ``length_loss_weight`` (fairseq: 0.1).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections

from attnlab.choices import check_choice
from attnlab.nn.config import MODEL_NAMES
from attnlab.specials import BOS, MASK, PAD
from attnlab.train.config import NAT_MASKINGS

# A statistic is a (sum, count) pair; its value is sum / count.
Stats = dict[str, tuple[jax.Array, jax.Array]]


def smoothed_cross_entropy(
    logits: jax.Array, targets: jax.Array, mask: jax.Array, smoothing: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Return (sum of smoothed CE, sum of plain NLL, number of correct argmaxes) over ``mask``."""
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    smooth = -jnp.mean(log_p, axis=-1)  # -sum_v (1/V) log p_v
    loss = (1.0 - smoothing) * nll + smoothing * smooth
    weight = mask.astype(jnp.float32)
    correct = (jnp.argmax(logits, axis=-1) == targets) * weight
    return jnp.sum(loss * weight), jnp.sum(nll * weight), jnp.sum(correct)


def _token_stats(logits, targets, mask, smoothing) -> Stats:
    loss, nll, correct = smoothed_cross_entropy(logits, targets, mask, smoothing)
    count = jnp.sum(mask.astype(jnp.float32))
    return {"loss": (loss, count), "nll": (nll, count), "accuracy": (correct, count)}


def shift_right(targets: jax.Array) -> jax.Array:
    """Teacher-forcing decoder input: ``[BOS] + targets[:-1]``."""
    bos = jnp.full_like(targets[:, :1], BOS)
    return jnp.concatenate([bos, targets[:, :-1]], axis=1)


def nat_decoder_input(
    targets: jax.Array, masking: str, key: jax.Array | None, *, canvas: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Return (decoder tokens, positions that carry a loss) for NAT training.

    ``all``: every target position is MASK (vanilla NAT). ``uniform`` (CMLM, Ghazvininejad et
    al. 2019): each row masks ``k ~ U{1..len}`` of its target positions chosen at random, keeps
    the others visible, and is trained on the masked ones only.

    ``canvas=True`` (``nat_target="eos_pad"``, for ``eos_cut`` decoding): the target positions
    are the whole padded canvas, so the decoder learns to emit the tokens, EOS, and then PAD
    at every later position; it never needs to be told the length.
    """
    present = jnp.ones_like(targets, bool) if canvas else targets != PAD
    if masking == "all":
        return jnp.where(present, MASK, PAD), present
    check_choice("nat_masking", masking, NAT_MASKINGS)
    k_key, order_key = jax.random.split(key)
    lengths = jnp.sum(present, axis=-1)
    k = jnp.floor(jax.random.uniform(k_key, lengths.shape) * lengths).astype(jnp.int32) + 1
    scores = jnp.where(present, jax.random.uniform(order_key, targets.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
    masked = present & (rank < k[:, None])
    return jnp.where(masked, MASK, targets), masked


def compute_stats(
    model: object,
    batch: Mapping[str, jax.Array],
    config: ml_collections.ConfigDict,
    *,
    train: bool,
    key: jax.Array | None = None,
) -> tuple[jax.Array, Stats]:
    """Run ``model`` on ``batch`` and return (the loss to minimise, its statistics)."""
    name = check_choice("model.name", config.model.name, MODEL_NAMES)
    smoothing = config.label_smoothing if train else 0.0
    valid = batch["valid"].astype(bool)
    if name == "seq2seq":
        src, targets = batch["inputs"], batch["targets"]
        logits = model(src, shift_right(targets), train=train)
        stats = _token_stats(logits, targets, (targets != PAD) & valid[:, None], smoothing)
    elif name == "nat":
        src, targets = batch["inputs"], batch["targets"]
        masking = config.nat_masking if train else "all"
        canvas = config.nat_target == "eos_pad"
        dec, loss_mask = nat_decoder_input(targets, masking, key, canvas=canvas)
        logits, length_logits = model(src, dec, train=train)
        stats = _token_stats(logits, targets, loss_mask & valid[:, None], smoothing)
        length_target = model.length_classes(
            jnp.sum(targets != PAD, axis=-1), jnp.sum(src != PAD, axis=-1)
        )
        l_loss, _, l_correct = smoothed_cross_entropy(length_logits, length_target, valid, 0.0)
        rows = jnp.sum(valid.astype(jnp.float32))
        stats["length_loss"] = (l_loss, rows)
        stats["length_accuracy"] = (l_correct, rows)
    elif name == "tagger":
        tokens, labels = batch["inputs"], batch["labels"]
        logits = model(tokens, train=train)
        stats = _token_stats(logits, labels, (tokens != PAD) & valid[:, None], smoothing)
    else:  # classifier
        logits = model(batch["inputs"], train=train)
        stats = _token_stats(logits, batch["label"], valid, smoothing)
    loss = mean(stats["loss"])
    if name == "nat":
        loss = loss + config.length_loss_weight * mean(stats["length_loss"])
    return loss, stats


def mean(stat: tuple[jax.Array, jax.Array]) -> jax.Array:
    """``sum / count``, and 0 for an empty count."""
    total, count = stat
    return total / jnp.maximum(count, 1.0)
