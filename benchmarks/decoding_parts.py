"""Where the time of a batch-1 decode goes: the profile evidence of ``benchmarks/decoding.py``.

- ``measure_parts``: an encoder pass, the NAT decoder pass and one cached AT step at batch 1
  and 4, and the AT-beam-4 / NAT ratio those parts allow at a given output length.
- ``measure_dispatch``: the cost of a jitted no-op taking the model as an ``nnx.State`` plus a
  static ``GraphDef``, as a state pytree, and as the tuple of arrays ``jit_model`` passes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnlab.decode.compiled import jit_model
from benchmarks import common


def steps_at(model, tokens, cache, *, steps: int) -> jax.Array:
    """``steps`` cached decoder steps at position ``cache["index"]``; a checksum of the logits."""

    def body(_, carry):
        cache, total = carry
        logits, new = model.decode_step(tokens, cache)
        return {**new, "index": cache["index"]}, total + jnp.sum(logits)

    return jax.lax.fori_loop(0, steps, body, (cache, jnp.zeros((), jnp.float32)))[1]


# -- 4. where the time goes: the parts of a decode -------------------------------------------
def _encode(model, src):
    return model.encode(src)


def _nat_decoder(model, dec, enc, src):
    return model.decode(dec, enc, src)


def measure_parts(at, nat, width, max_len, tokens, loop_steps, repeats, min_seconds):
    """Times of the parts of a decode of a ``width``-letter word and their upper bound on the
    AT-beam-4 / NAT ratio for outputs of ``tokens`` tokens (with the EOS).

    Parts: an encoder pass (the AT's and the NAT's), the NAT decoder pass at canvas
    ``width`` (each a jitted call, ``loop_steps`` in a row), one cached AT step at batch 1
    (greedy) and batch 4 (beam 4; search logic excluded), timed as in target 1. A beam-4
    decode costs at least the AT encoder plus ``tokens`` batch-4 steps, and a NAT
    ``length_pred`` decode about its encoder plus one decoder pass (plus the length head and
    the argmax), so the ratio of the two estimates what NAT can gain.
    """
    src = jnp.asarray(np.arange(width)[None] % 20 + 5, jnp.int32)
    at_encode, nat_encode = jit_model(_encode, at), jit_model(_encode, nat)
    nat_decode = jit_model(_nat_decoder, nat)
    nat_enc = nat_encode(src)
    canvas = jnp.full((1, width), 4, jnp.int32)  # MASK everywhere
    step = jit_model(steps_at, at, steps=loop_steps)
    caches = {b: at.init_cache(jnp.repeat(src, b, axis=0), max_len) for b in (1, 4)}

    def loop(call):  # ``loop_steps`` calls in a row: the weights stay in cache, as in a decode
        return lambda: [call() for _ in range(loop_steps)][-1]

    calls = {
        "at_encoder": loop(lambda: at_encode(src)),
        "nat_encoder": loop(lambda: nat_encode(src)),
        "nat_decoder_pass": loop(lambda: nat_decode(canvas, nat_enc, src)),
        "at_step_b1": lambda: step(jnp.full((1,), 7, jnp.int32), caches[1]),
        "at_step_b4": lambda: step(jnp.full((4,), 7, jnp.int32), caches[4]),
    }
    times = common.interleaved_times(calls, repeats, min_seconds=min_seconds)
    ms = {name: float(np.median(t)) * 1e3 / loop_steps for name, t in times.items()}
    beam = ms["at_encoder"] + tokens * ms["at_step_b4"]
    return {
        "width": width,
        **{f"{name}_ms": value for name, value in ms.items()},
        "output_tokens": tokens,
        "bound_beam4_over_nat": beam / (ms["nat_encoder"] + ms["nat_decoder_pass"]),
        "bound_free_encoders": tokens * ms["at_step_b4"] / ms["nat_decoder_pass"],
    }


# -- 5. dispatch: the profile evidence ----------------------------------------------------
def measure_dispatch(model, repeats: int, min_seconds: float) -> list[dict[str, Any]]:
    graphdef, state = nnx.split(model)
    leaves = tuple(jax.tree.leaves(state))
    src = jnp.ones((1, 8), jnp.int32)
    old = jax.jit(lambda state, src, graphdef: src, static_argnames=("graphdef",))
    pytree = jax.jit(lambda state, src: src)
    calls = {
        "state + static graphdef (before)": lambda: old(state, src, graphdef=graphdef),
        "state pytree": lambda: pytree(state, src),
        "tuple of arrays (now)": lambda: pytree(leaves, src),
        "source only": lambda: pytree((), src),
    }
    times = common.interleaved_times(calls, repeats, min_seconds=min_seconds)
    return [
        {"argument": name, "us_per_call": float(np.median(t)) * 1e6, "arrays": len(leaves)}
        for name, t in times.items()
    ]
