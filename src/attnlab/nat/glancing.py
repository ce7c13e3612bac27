"""Glancing training (GLAT, Qian et al. 2021, "Glancing Transformer for Non-Autoregressive
Neural Machine Translation"): how many gold tokens to reveal, and where.

One GLAT step on a batch:

1. A first decoding pass, without gradients, predicts every position from the recipe's
   ordinary decoder inputs (here with ``train=False``: no dropout, so the guess is
   deterministic and a ratio of 0 leaves the step exactly as without glancing).
2. Compare the guess with the references: the gold tokens for ``vanilla``; the labels of
   the best CTC alignment for ``ctc`` and the tokens of the best graph path at their vertices
   for ``dag`` (Gu & Kong 2021, "Fully Non-autoregressive Neural Machine Translation: Tricks
   of the Trade"; Huang et al. 2022). ``errors`` = the number of positions guessed wrong.
3. Reveal ``N = ceil(ratio * errors)`` references as decoder inputs, at positions drawn
   uniformly at random among the row's reference positions (right or wrong).
4. Train on the rest: token-level recipes drop the revealed positions from the loss; CTC and
   the DAG keep their sequence loss over the whole canvas, as Gu & Kong and Huang et al. do.

The ratio follows a schedule (config keys ``glancing_start``, ``glancing_end`` and
``glancing_anneal_fraction`` = f): a linear anneal from ``start`` at step 0 to ``end`` at step
``f * num_train_steps``, then a hold at ``end``:

    ratio(step) = start + (end - start) * min(step / (f * num_train_steps), 1)

(f = 0 holds ``end`` from the first step). The default, 0.5 to 0.3 over the whole run (f = 1),
follows Qian et al. 2021, who anneal the ratio; the thu-coai/DA-Transformer WMT scripts pass
``--glat-p 0.5:0.1@200k --glance-strategy number-random``, 0.5 to 0.1 over 200k updates with
random positions, then a hold: ``glancing_anneal_fraction`` < 1 is that shape on a run of its
own length. Here the default stops at 0.3, so the last steps still glance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def glancing_ratio(
    step: jax.Array, total_steps: int, start: float, end: float, anneal_fraction: float = 1.0
) -> jax.Array:
    """The schedule above: ``start`` at step 0, ``end`` from ``anneal_fraction * total_steps``
    on (float32)."""
    anneal_steps = float(anneal_fraction) * max(int(total_steps), 1)
    if anneal_steps <= 0.0:
        return jnp.float32(end)
    progress = jnp.minimum(jnp.asarray(step, jnp.float32) / anneal_steps, 1.0)
    return jnp.float32(start) + (jnp.float32(end) - jnp.float32(start)) * progress


def random_subset(candidates: jax.Array, counts: jax.Array, key: jax.Array) -> jax.Array:
    """bool [B, N]: ``counts[b]`` positions of row ``b`` drawn uniformly among ``candidates``.

    Each candidate gets a uniform score and the ``counts[b]`` lowest are kept (a uniformly
    random subset of that size; counts beyond the number of candidates keep them all).
    """
    scores = jnp.where(candidates, jax.random.uniform(key, candidates.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
    return candidates & (rank < counts[:, None])


def glance_count(errors: jax.Array, ratio: jax.Array) -> jax.Array:
    """``N = ceil(ratio * errors)`` per row (float32 arithmetic), int32 ``[B]``."""
    product = jnp.asarray(ratio, jnp.float32) * errors.astype(jnp.float32)
    return jnp.ceil(product).astype(jnp.int32)


def glance(
    guess: jax.Array, references: jax.Array, candidates: jax.Array, ratio: jax.Array, key
) -> jax.Array:
    """bool [B, N]: the positions whose reference is revealed (steps 2-3 above).

    ``guess`` and ``references`` [B, N] are token ids; ``candidates`` [B, N] marks the
    positions that have a reference.
    """
    errors = jnp.sum(candidates & (guess != references), axis=-1)
    return random_subset(candidates, glance_count(errors, ratio), key)
