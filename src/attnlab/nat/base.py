"""What every NAT recipe answers: the ``Recipe`` base class, and the pieces recipes share.

A recipe (``attnlab.nat``'s registry maps names to them) is one object that
``NATSeq2Seq`` and the code around it ask, never comparing recipe names:

- its options: ``length_modes`` (``("none",)``: no length head), ``default_upsample`` (0: the
  canvas is not upsampled; else the factor ``model.upsample = 0`` stands for), ``glancing``
  (whether glancing training applies), ``marks_copies`` (the ``model.mark_copies`` a task
  config gets by default), ``fixed_canvas`` (the canvas is ``model.max_len`` wide, which
  training sets to the data's length bound), ``extra_classes`` (output classes after the
  target vocabulary, as CTC's blank);
- its extra heads (``heads``: named nnx modules the model holds), its canvas (``canvas``),
  its training statistics (``stats``);
- its decoding strategies: ``strategies`` (the forms, for messages), ``default_strategy``,
  ``parse_strategy`` (a name to a ``Strategy``, or one ValueError line naming the valid
  forms), ``check_decode`` and ``candidates`` (inside the jitted decode of
  ``attnlab.nat.decoding``).

A statistic is a ``(sum, count)`` pair; the loss to minimise is ``sum / count`` of ``loss``
(plus ``length_loss_weight`` times ``length_loss`` where the recipe has a length head).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attnlab.specials import EOS, MASK, PAD

Stats = dict[str, tuple[jax.Array, jax.Array]]


class Strategy(NamedTuple):
    """A parsed decoding strategy: its ``name``, the K of ``name:K`` and refinement passes."""

    name: str
    beam: int = 1
    iterations: int = 1


class Candidates(NamedTuple):
    """``k`` candidate outputs per row, of which decoding keeps the best score."""

    tokens: jax.Array  # [B, k, T] content tokens, EOS, PAD
    lengths: jax.Array  # [B, k] counting the EOS
    scores: jax.Array  # [B, k] higher is better
    possible: jax.Array  # [B, k] bool: False rules a candidate out


_FORM = re.compile(r"([a-z_]+)(?::([1-9][0-9]*))?")


class Recipe:
    """The defaults of a recipe; each recipe module subclasses it (see the module doc)."""

    name: str = ""
    length_modes: tuple[str, ...] = ("none",)
    default_upsample: int = 0
    glancing: bool = False
    marks_copies: bool = False
    fixed_canvas: bool = False
    extra_classes: int = 0
    strategies: tuple[str, ...] = ()
    default_strategy: str = ""

    # A recipe is a singleton: copying a model keeps the same recipe (so jit caches match).
    def __copy__(self) -> Recipe:
        return self

    def __deepcopy__(self, memo: dict) -> Recipe:
        return self

    def __repr__(self) -> str:
        return f"<NAT recipe {self.name!r}>"

    # -- options -----------------------------------------------------------------------
    @property
    def has_length_head(self) -> bool:
        return self.length_modes != ("none",)

    @property
    def upsampled(self) -> bool:
        return self.default_upsample > 0

    def upsample_factor(self, cfg: ml_collections.ConfigDict) -> int:
        """The canvas factor (``model.upsample`` or the recipe's default); 1 if not upsampled."""
        if not self.upsampled:
            return 1
        return int(cfg.upsample) or self.default_upsample

    def strategy_or_default(self, strategy: str) -> str:
        """``strategy``, or the recipe's default when it is empty."""
        return strategy or self.default_strategy

    def parse_strategy(self, strategy: str) -> Strategy:
        """``strategy`` if it is one of ``strategies`` (``name`` or ``name:K`` with K >= 1)."""
        m = _FORM.fullmatch(str(strategy))
        if m is not None:
            name, number = m.group(1), m.group(2)
            if (f"{name}:K" if number else name) in self.strategies:
                return Strategy(name, int(number or 1))
        raise self.refuse(strategy)

    def refuse(self, strategy: str) -> ValueError:
        valid = ", ".join(self.strategies)
        return ValueError(
            f"NAT strategy {strategy!r} does not apply to nat_recipe {self.name!r}; valid: {valid}"
        )

    # -- model parts -------------------------------------------------------------------
    def heads(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> dict[str, nnx.Module]:
        """The recipe's extra heads, by the attribute name the model keeps them under."""
        return {}

    def canvas(self, model: Any, src: jax.Array) -> jax.Array:
        """The decoder tokens [B, W] of a recipe whose canvas the source sets."""
        raise ValueError(f"nat_recipe {self.name!r} has no fixed canvas (a length head)")

    # -- training ----------------------------------------------------------------------
    def stats(
        self,
        model: Any,
        enc: jax.Array,
        src: jax.Array,
        targets: jax.Array,
        valid: jax.Array,
        *,
        train: bool,
        key: jax.Array | None,
        ratio: jax.Array | None,
        smoothing: float,
    ) -> Stats:
        """The training statistics, with at least ``loss``; ``ratio`` turns glancing on."""
        raise NotImplementedError

    def loss(
        self,
        model: Any,
        batch: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
        ratio: jax.Array | None = None,
        smoothing: float = 0.0,
    ) -> Stats:
        """``stats`` of ``batch`` (``inputs``, ``targets``, ``valid``) after encoding it."""
        src, targets = batch["inputs"], batch["targets"]
        enc = model.encode(src, train=train)
        valid = batch["valid"].astype(bool)
        return self.stats(
            model, enc, src, targets, valid, train=train, key=key, ratio=ratio, smoothing=smoothing
        )

    # -- decoding ----------------------------------------------------------------------
    def needs_reference(self, strategy: Strategy) -> bool:
        """Whether ``strategy`` reads the reference lengths (an oracle)."""
        return False

    def check_decode(self, strategy: Strategy, canvas: int, rescored: bool) -> None:
        """One ValueError line for a strategy that cannot decode on this ``canvas``."""
        if rescored:
            raise ValueError(f"rescorer applies to no strategy of nat_recipe {self.name!r}")

    def candidates(
        self,
        model: Any,
        src: jax.Array,
        ref_lengths: jax.Array,
        strategy: Strategy,
        *,
        canvas: int,
        trim: bool,
    ) -> Candidates:
        """The candidates of ``strategy`` (jitted); ``ref_lengths`` [B] where it needs them."""
        raise NotImplementedError


def source_canvas(src: jax.Array, upsample: int) -> jax.Array:
    """MASK at the first ``upsample * source_length`` of ``upsample * S`` positions, then PAD."""
    lengths = upsample * (src != PAD).sum(axis=1)
    width = upsample * src.shape[1]
    return jnp.where(jnp.arange(width)[None, :] < lengths[:, None], MASK, PAD).astype(jnp.int32)


def one_candidate(tokens: jax.Array, lengths: jax.Array, scores: jax.Array) -> Candidates:
    """``[B, ...]`` outputs as the one candidate of each row."""
    return Candidates(
        tokens[:, None], lengths[:, None], scores[:, None], jnp.ones(lengths.shape + (1,), bool)
    )


def end_with_eos(tokens: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Content ``tokens`` [..., T] of ``lengths`` -> [..., T + 1] with EOS after them."""
    pad = [(0, 0)] * (tokens.ndim - 1) + [(0, 1)]
    tokens = jnp.pad(tokens, pad, constant_values=PAD)
    pos = jnp.arange(tokens.shape[-1])
    tokens = jnp.where(pos == lengths[..., None], EOS, tokens)
    return tokens.astype(jnp.int32), (lengths + 1).astype(jnp.int32)
