"""What keeps a batch-1 decode cheap to call: a flat model state and bucketed widths.

Decoding one G2P word is a few hundred microseconds of compute, so what surrounds the
jitted call matters:

- **Dispatch.** A jitted call hashes its static arguments to find its executable, and an
  NNX ``GraphDef`` is hashed anew every time, walking the whole module: 0.47 ms for the
  ``g2p.py`` model. And an ``nnx.State`` is a pytree that jax flattens in Python on every
  call (one callback per variable): 0.13 ms for its 148 arrays, against 0.03 ms for the
  same arrays as one tuple, which jax flattens in C++. (Jitted no-ops, measured on the
  2-core development machine.) ``FlatModel`` splits the model once into
  ``(graphdef, treedef, leaves)``, and ``model_jit`` makes one jitted function per model
  structure and settings, looked up once when a decoder is made: a call passes only the
  tuple of leaves and the batch.
- **Padding.** Evaluation batches are padded to the dataset's longest source (32 for
  G2P), while a word has about 8 letters. Every model here masks PAD keys and zeroes PAD
  inputs of convolutions, so columns that are PAD in every row change nothing but the cost:
  ``trim_source`` drops them, down to a width from ``widths`` (8, 16, 32, ... and the full
  width), so a decoder compiles for a handful of widths, not one per word length.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx

from attnlab.specials import PAD

SMALLEST_WIDTH = 8


class FlatModel(NamedTuple):
    """A module split once into its static structure and a flat tuple of arrays."""

    graphdef: Any  # nnx.GraphDef: hashable, but hashing it walks the module (0.5-1 ms)
    treedef: Any  # PyTreeDef of the nnx.State
    leaves: tuple[jax.Array, ...]  # the arrays, traced by the jitted functions

    @classmethod
    def split(cls, model: nnx.Module) -> FlatModel:
        graphdef, state = nnx.split(model)
        leaves, treedef = jax.tree.flatten(state)
        return cls(graphdef, treedef, tuple(leaves))

    def jit(self, compiled: Callable[..., Callable], **settings: Any) -> Callable:
        """``compiled(graphdef, treedef, **settings)`` (a ``model_jit``) bound to the leaves:
        ``call(*args) = fn(model, *args, **settings)``, jitted. Keep ``call``: making it
        hashes the structure."""
        jitted = compiled(self.graphdef, self.treedef, **settings)
        return functools.partial(jitted, self.leaves)


def model_jit(fn: Callable[..., Any]) -> Callable[..., Callable]:
    """``fn(model, *args, **settings)`` -> ``get(graphdef, treedef, **settings)``, cached.

    ``get`` returns ``jax.jit`` of ``(leaves, *args) -> fn(model, *args, **settings)``, one per
    model structure and settings (which must be hashable), so equal structures share their
    compilations and no call hashes the structure again. ``get.num_compiled()`` counts the
    executables compiled so far (all structures, settings and argument shapes).
    """
    jitted: dict[tuple, Callable] = {}

    def get(graphdef: Any, treedef: Any, **settings: Any) -> Callable:
        key = (graphdef, treedef, tuple(sorted(settings.items())))
        if key not in jitted:

            def run(leaves: tuple[jax.Array, ...], *args: Any) -> Any:
                model = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))
                return fn(model, *args, **settings)

            jitted[key] = jax.jit(run)
        return jitted[key]

    get.num_compiled = lambda: sum(f._cache_size() for f in jitted.values())  # type: ignore[attr-defined]
    return get


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
