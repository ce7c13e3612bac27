"""Label-smoothed cross-entropy ("Attention Is All You Need", sec. 5.4), as masked sums.

With smoothing ``e`` over ``V`` classes the target distribution puts ``1 - e + e/V`` on the
target and ``e/V`` on every other class: ``CE(z, y) = -sum_v q_v log softmax(z)_v``,
``q = (1 - e) onehot(y) + e/V``. Masked positions contribute nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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


def token_stats(
    logits: jax.Array, targets: jax.Array, mask: jax.Array, smoothing: float
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """``{"loss", "nll", "accuracy"}`` as (sum, count) pairs over the ``mask`` positions."""
    loss, nll, correct = smoothed_cross_entropy(logits, targets, mask, smoothing)
    count = jnp.sum(mask.astype(jnp.float32))
    return {"loss": (loss, count), "nll": (nll, count), "accuracy": (correct, count)}
