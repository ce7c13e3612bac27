"""What keeps a batch-1 decode cheap to call: a model split once, and few source widths.

Decoding one G2P word is a few hundred microseconds of compute, so what surrounds the
jitted call matters (the measurements are in docs/decoding_cost.md, "The decoder's fixed cost"):

- **Dispatch.** ``jit_model(fn, model)`` splits the model once, into its structure and a
  flat tuple of arrays, and returns a call that passes only that tuple and the arguments.
  Passing the NNX ``GraphDef`` as a static argument would hash it on every call (walking the
  whole module), and an ``nnx.State`` is flattened in Python on every call. The jitted
  function is looked up by (function, structure, settings), so decoders of models with the
  same structure share their compilations; the last 64 are kept.
- **Padding.** Evaluation batches are padded to the dataset's longest source (32 for
  G2P), while a word has about 8 letters. Every model here masks PAD keys and zeroes PAD
  inputs of convolutions, so columns that are PAD in every row change nothing but the cost:
  ``trim_source`` drops them, down to a width from ``widths`` (8, 16, 32, ... and the full
  width), so a decoder compiles for a handful of widths, not one per word length.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx

from attnlab.specials import PAD

SMALLEST_WIDTH = 8


def jit_model(fn: Callable[..., Any], model: nnx.Module, **settings: Any) -> Callable[..., Any]:
    """``call(*args) = fn(model, *args, **settings)``, jitted; ``settings`` are static.

    The call holds the model's arrays as they are now (later updates to ``model`` are not
    seen). Make it once and keep it: making it walks the module.
    """
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    jitted = _jitted(fn, graphdef, treedef, tuple(sorted(settings.items())))
    return functools.partial(jitted, tuple(leaves))


@functools.lru_cache(maxsize=64)
def _jitted(fn: Callable[..., Any], graphdef: Any, treedef: Any, settings: tuple) -> Callable:
    def run(leaves: tuple[jax.Array, ...], *args: Any) -> Any:
        model = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))
        return fn(model, *args, **dict(settings))

    return jax.jit(run)


def widths(full: int) -> tuple[int, ...]:
    """The widths a dimension of size ``full`` is cut to: 8, 16, 32, ... below it, then it."""
    out, width = [], SMALLEST_WIDTH
    while width < full:
        out.append(width)
        width *= 2
    return (*out, int(full))


def bucket(extent: int, full: int) -> int:
    """The smallest of ``widths(full)`` that holds ``extent`` positions."""
    return next(w for w in widths(full) if w >= extent)


def source_width(src: np.ndarray) -> int:
    """The width ``trim_source`` cuts ``src`` [B, S] to."""
    src = np.asarray(src)
    used = np.flatnonzero(np.any(src != PAD, axis=0))
    return bucket(int(used[-1]) + 1 if used.size else 1, src.shape[1])


def trim_source(src: Any) -> np.ndarray:
    """``src`` [B, S] as int32 numpy without the trailing all-PAD columns (bucketed width)."""
    src = np.asarray(src, np.int32)
    return src[:, : source_width(src)]
