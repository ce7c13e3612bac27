"""Helpers shared by the path dynamic programs of ``ops.dag`` and ``ops.ctc``.

Both run a forward recursion over steps (target tokens for the DAG, frames for CTC) and
states (graph vertices, CTC label states), then read the result at a per-example last step
and state. The Viterbi variants keep, at each step, the best predecessor of every state, and
``backtrack`` follows those pointers back to the start.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# A finite "log 0". Masked transitions and unreachable states take this value instead of -inf,
# so no -inf - -inf (NaN) ever appears in a logsumexp or its gradient, and exp(LOG_ZERO - x) is
# exactly 0 in float32 for any real log-probability x. Sums of a few thousand of them stay
# finite in float32 (max 3.4e38); the recursions also clip states at LOG_ZERO after each step.
LOG_ZERO = -1e30

# A result below this is "no path": at least one LOG_ZERO term went into it.
NO_PATH = LOG_ZERO / 2


def backtrack(pointers: jax.Array, last_step: jax.Array, last_state: jax.Array) -> jax.Array:
    """Follow Viterbi back-pointers from ``(last_step, last_state)`` back to step 0.

    ``pointers[s, b, q]`` is the best predecessor (a state at step ``s - 1``) of state ``q`` at
    step ``s``; ``pointers[0]`` is never read. Returns int32 ``[B, S]``: the state visited at
    each step ``s <= last_step[b]``, and -1 after ``last_step[b]`` (all -1 where
    ``last_step[b] < 0``).
    """
    num_steps, _, num_states = pointers.shape
    last_step = jnp.asarray(last_step, jnp.int32)
    last_state = jnp.clip(jnp.asarray(last_state, jnp.int32), 0, num_states - 1)

    def step(state, inputs):
        s, ptr = inputs
        here = jnp.where(s == last_step, last_state, state)
        before = jnp.take_along_axis(ptr, here[:, None], axis=1)[:, 0]
        return before.astype(jnp.int32), jnp.where(s <= last_step, here, -1)

    steps = jnp.arange(num_steps, dtype=jnp.int32)
    _, path = lax.scan(step, last_state, (steps, pointers), reverse=True)
    return path.T
