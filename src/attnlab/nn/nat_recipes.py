"""The NAT recipes: how a ``NATSeq2Seq`` is trained and decoded, one named choice.

``model.nat_recipe`` fixes what the decoder sees in training and at decoding. The canvas is
the decoder's input: a row of MASK tokens (or, with ``decoder_input = copy_source``, the
source embeddings copied uniformly onto it), then PAD.

- ``vanilla`` (Gu et al. 2018): the canvas has the target's length, from a length head at
  decoding (``length_mode`` absolute or offset); every position is predicted at once and
  trained by cross-entropy. Decoding: ``length_pred``, ``length_beam:K``, ``oracle_length``.
- ``cmlm`` (Ghazvininejad et al. 2019): as vanilla, but each training row masks ``k ~
  U{1..len}`` random target positions, shows the others, and trains on the masked ones;
  adds ``mask_predict:T`` refinement (alone or after ``+``).
- ``eos_canvas``: a fixed canvas of ``model.max_len`` positions (which ``resolve_config``
  sets to the data's length bound: the larger of its source and target length limits,
  ``DatasetInfo.max_len`` and ``max_target_len``, a target counting its EOS) whatever the
  batch's padding; the target is the tokens,
  EOS, then PAD to the end of the canvas; decoding (``eos_cut``) reads the same all-MASK
  canvas and cuts after the first EOS. No length head.
- ``ctc`` (Libovický & Helcl 2018; Saharia et al. 2020): a canvas of ``k = upsample`` times
  the source length; each position emits a token or the blank (an extra output class, id
  ``target_vocab_size``); trained with ``optax.ctc_loss`` on the target without its EOS.
  Decoding: ``ctc`` (argmax, merge repeats, drop blanks) and ``ctc_beam:K`` (prefix beam
  search). See ``attnlab.nn.nat_ctc``.
- ``dag`` (DA-Transformer, Huang et al. 2022): a graph of ``lambda = upsample`` times the
  source length vertices, each emitting a token and a transition distribution over later
  vertices; trained by the graph likelihood of the target with its EOS. Decoding:
  ``dag_greedy``, ``dag_lookahead``, ``dag_viterbi``. See ``attnlab.nn.nat_dag``.

Options checked against the recipe (``check_recipe``, ``check_glancing``,
``check_strategy``): ``length_mode`` (``none`` for the recipes without a length head),
``upsample`` (only ``ctc`` and ``dag``; 0 picks ``DEFAULT_UPSAMPLE``), glancing training
(``vanilla``, ``ctc``, ``dag``; ``attnlab.nn.glancing``), and the decoding strategy. Every
recipe takes either ``decoder_input``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from attnlab.nn.config import NAT_RECIPES
from attnlab.nn.glancing import glance, random_subset
from attnlab.nn.nat_ctc import ctc_stats
from attnlab.nn.nat_dag import dag_stats
from attnlab.ops.losses import smoothed_cross_entropy, token_stats
from attnlab.specials import MASK, PAD


class Recipe(NamedTuple):
    length_modes: tuple[str, ...]  # valid model.length_mode; ("none",) = no length head
    glancing: bool  # whether glancing training applies
    strategies: tuple[str, ...]  # decoding strategies (attnlab.decode.nat) it supports
    default_strategy: str  # what evaluation during training decodes with
    upsampled: bool  # canvas = upsample x source length


_LENGTH_STRATEGIES = ("length_pred", "length_beam:K", "oracle_length")
RECIPES: dict[str, Recipe] = {
    "vanilla": Recipe(("absolute", "offset"), True, _LENGTH_STRATEGIES, "length_beam:3", False),
    "cmlm": Recipe(
        ("absolute", "offset"),
        False,
        (*_LENGTH_STRATEGIES, "mask_predict:T", "<length strategy>+mask_predict:T"),
        "length_beam:3+mask_predict:4",
        False,
    ),
    "eos_canvas": Recipe(("none",), False, ("eos_cut",), "eos_cut", False),
    "ctc": Recipe(("none",), True, ("ctc", "ctc_beam:K"), "ctc", True),
    "dag": Recipe(
        ("none",), True, ("dag_greedy", "dag_lookahead", "dag_viterbi"), "dag_lookahead", True
    ),
}
assert tuple(RECIPES) == NAT_RECIPES
# The canvas factor when model.upsample is 0: k for ctc, lambda for dag (BUILD_NOTES.md
# "NAT recipes" has the measurements behind them).
DEFAULT_UPSAMPLE = {"ctc": 3, "dag": 2}


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown model.nat_recipe {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]


def check_recipe(cfg: ml_collections.ConfigDict) -> None:
    """One-line ValueError if ``length_mode`` or ``upsample`` does not fit ``nat_recipe``."""
    name = cfg.nat_recipe
    recipe = _recipe(name)
    if cfg.length_mode not in recipe.length_modes:
        raise ValueError(
            f"model.length_mode {cfg.length_mode!r} does not apply to nat_recipe {name!r}; "
            f"valid: {', '.join(recipe.length_modes)}"
        )
    if cfg.upsample < 0 or (cfg.upsample and not recipe.upsampled):
        upsampled = [r for r, spec in RECIPES.items() if spec.upsampled]
        valid = "0 or more" if recipe.upsampled else f"0 (it applies to {', '.join(upsampled)})"
        raise ValueError(
            f"model.upsample {cfg.upsample} does not apply to nat_recipe {name!r}; valid: {valid}"
        )


def upsample_factor(cfg: ml_collections.ConfigDict) -> int:
    """The canvas factor of an upsampled recipe (``upsample`` or its default); 1 otherwise."""
    if not _recipe(cfg.nat_recipe).upsampled:
        return 1
    return int(cfg.upsample) or DEFAULT_UPSAMPLE[cfg.nat_recipe]


def check_glancing(recipe: str, glancing: bool) -> None:
    """One-line ValueError if glancing training is asked of a recipe that has none."""
    if glancing and not _recipe(recipe).glancing:
        valid = ", ".join(r for r, spec in RECIPES.items() if spec.glancing)
        raise ValueError(f"glancing does not apply to nat_recipe {recipe!r}; valid: {valid}")


def check_strategy(recipe: str, names: set[str], strategy: str) -> None:
    """One-line ValueError if a strategy made of ``names`` is not one of the recipe's."""
    allowed = {s.split(":")[0] for s in _recipe(recipe).strategies if not s.startswith("<")}
    if not names <= allowed:
        valid = ", ".join(_recipe(recipe).strategies)
        raise ValueError(
            f"NAT strategy {strategy!r} does not apply to nat_recipe {recipe!r}; valid: {valid}"
        )


def recipe_strategy(recipe: str, strategy: str) -> str:
    """``strategy``, or the recipe's default when it is empty."""
    return strategy or _recipe(recipe).default_strategy


# -- the token-level recipes: vanilla, cmlm, eos_canvas --------------------------------------
def token_inputs(
    recipe: str, targets: jax.Array, key: jax.Array | None, *, train: bool
) -> tuple[jax.Array, jax.Array]:
    """(decoder tokens, positions that carry a loss) for a token-level recipe's targets.

    ``vanilla`` and ``eos_canvas``: every target position is MASK (for ``eos_canvas`` the
    targets already span the canvas, PAD included). ``cmlm`` in training: each row masks ``k ~
    U{1..len}`` of its target positions chosen at random and keeps the others visible.
    """
    present = jnp.ones_like(targets, bool) if recipe == "eos_canvas" else targets != PAD
    if recipe != "cmlm" or not train:
        return jnp.where(present, MASK, PAD).astype(jnp.int32), present
    k_key, order_key = jax.random.split(key)
    lengths = jnp.sum(present, axis=-1)
    k = jnp.floor(jax.random.uniform(k_key, lengths.shape) * lengths).astype(jnp.int32) + 1
    masked = random_subset(present, k, order_key)
    return jnp.where(masked, MASK, targets).astype(jnp.int32), masked


def canvas_targets(targets: jax.Array, width: int) -> jax.Array:
    """``eos_canvas`` targets: the tokens, EOS, then PAD out to the fixed canvas ``width``."""
    if targets.shape[1] > width:
        raise ValueError(f"targets of width {targets.shape[1]} exceed the canvas {width}")
    return jnp.pad(targets, ((0, 0), (0, width - targets.shape[1])), constant_values=PAD)


def token_recipe_stats(
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
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Cross-entropy statistics of ``vanilla``, ``cmlm`` and ``eos_canvas``.

    With a glancing ``ratio``, a first pass (no gradient) guesses every target position; the
    revealed positions get their gold token as decoder input and leave the loss.
    """
    if model.recipe == "eos_canvas":
        targets = canvas_targets(targets, model.max_len)
    mask_key, glance_key = jax.random.split(key) if key is not None else (None, None)
    dec, loss_mask = token_inputs(model.recipe, targets, mask_key, train=train)
    stats = {}
    if ratio is not None:
        first = model.decode(dec, jax.lax.stop_gradient(enc), src, train=False)
        guess = jnp.argmax(jax.lax.stop_gradient(first), axis=-1)
        reveal = glance(guess, targets, loss_mask, ratio, glance_key)
        dec = jnp.where(reveal, targets, dec)
        loss_mask = loss_mask & ~reveal
        stats["glanced"] = (jnp.sum(reveal & valid[:, None]), jnp.sum(valid.astype(jnp.float32)))
    logits = model.decode(dec, enc, src, train=train)
    stats.update(token_stats(logits, targets, loss_mask & valid[:, None], smoothing))
    if model.has_length_head:
        length_target = model.length_classes(
            jnp.sum(targets != PAD, axis=-1), jnp.sum(src != PAD, axis=-1)
        )
        length_logits = model.length_logits(enc, src)
        l_loss, _, l_correct = smoothed_cross_entropy(length_logits, length_target, valid, 0.0)
        rows = jnp.sum(valid.astype(jnp.float32))
        stats["length_loss"] = (l_loss, rows)
        stats["length_accuracy"] = (l_correct, rows)
    return stats


def nat_stats(
    model: Any,
    batch: Any,
    *,
    train: bool,
    key: jax.Array | None = None,
    ratio: jax.Array | None = None,
    smoothing: float = 0.0,
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """The training statistics of ``model``'s recipe on ``batch`` (``inputs``, ``targets``,
    ``valid``): (sum, count) pairs with at least ``loss``; ``ratio`` turns glancing on."""
    src, targets = batch["inputs"], batch["targets"]
    valid = batch["valid"].astype(bool)
    enc = model.encode(src, train=train)
    kwargs = {"train": train, "key": key, "ratio": ratio}
    if model.recipe == "ctc":
        return ctc_stats(model, enc, src, targets, valid, **kwargs)
    if model.recipe == "dag":
        return dag_stats(model, enc, src, targets, valid, **kwargs)
    return token_recipe_stats(model, enc, src, targets, valid, smoothing=smoothing, **kwargs)
