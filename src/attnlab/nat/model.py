"""``NATSeq2Seq``: a non-autoregressive Transformer (Gu et al. 2018), trained by a recipe.

The decoder is not causal: every canvas position is predicted at once from decoder inputs
that hold MASK where a token is to be predicted (and, for mask-predict refinement or glancing,
observed tokens elsewhere), then PAD. How the canvas is laid out, what it is trained on and how
it is decoded is the recipe (``model.recipe``, named by ``model.nat_recipe``, one module of
``attnlab.nat`` each). The model asks its recipe: it builds a length head where the recipe has
one (``length_modes``), adds the recipe's extra output classes (``ctc``'s blank) and heads
(``dag``'s transition links, kept under the names the recipe gives), and sizes the decoder's
positions for ``upsample * max_len`` canvas positions (``ctc`` and ``dag``). What a MASK
position feeds the decoder is ``decoder_input``:

- ``mask``: the learned embedding of the MASK token (Ghazvininejad et al. 2019).
- ``copy_source``: the source token embedding (encoder input, without position) copied
  uniformly (Gu et al. 2018): target position ``j`` of a target of length ``Ly`` reads source
  position ``round(j * (Lx - 1) / max(Ly - 1, 1))`` of a source of length ``Lx`` (non-PAD
  counts, right padding; ``round`` is round-half-to-even, as ``jnp.round``). ``Ly`` is the
  number of non-PAD decoder tokens: the target length, the fixed ``eos_canvas`` width, or the
  upsampled ``ctc``/``dag`` canvas, the same in training and at decoding.

Copy marks (``mark_copies``). On an upsampled canvas (``ctc``: k = 3 positions per source
position) the copied vectors of one source position are identical, and only the positions
tell the copies apart. CTC needs more: to keep two equal neighbouring source tokens apart it
must emit a blank between their copies, so a position must know that it is the last copy.
With ``mark_copies`` each canvas position ``j`` adds two learned vectors, indexed by its rank
from the start and from the end of its run (the positions that read the same source index:
``copy_indices`` is non-decreasing in ``j``), each clipped at ``upsample + 1``. Libovický &
Helcl (2018) give each copy its own vector by a learned "state splitting" projection; the
marks are a cheaper way to the same knowledge.

Target length (``length_mode``), over ``max_len + 1`` classes:

- ``absolute``: class = length.
- ``offset``: class = length - src_len + max_len // 2, so the middle class means "as long as
  the source". Targets out of range are clipped to the end classes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attnlab.nat import check_model_options, get_recipe
from attnlab.nn.config import check_model
from attnlab.nn.layers import Decoder, Encoder, masked_mean
from attnlab.specials import MASK, PAD


class LengthPredictor(nnx.Module):
    """Mean-pools encoder states over non-pad positions and classifies over max_len+1 classes."""

    def __init__(self, d_model: int, max_len: int, *, rngs: nnx.Rngs) -> None:
        self.classify = nnx.Linear(d_model, max_len + 1, rngs=rngs)

    def __call__(self, enc: jax.Array, valid: jax.Array) -> jax.Array:
        """``enc`` [B, S, d], ``valid`` [B, S] -> raw logits [B, max_len + 1]."""
        return self.classify(masked_mean(enc, valid))


def copy_indices(src_lengths: jax.Array, tgt_lengths: jax.Array, length: int) -> jax.Array:
    """Uniform copy: source index ``round(j * (Lx-1) / max(Ly-1, 1))`` for j < ``length``."""
    j = jnp.arange(length)[None, :]
    lx = src_lengths[:, None].astype(jnp.float32)
    ly = tgt_lengths[:, None].astype(jnp.float32)
    idx = jnp.round(j * (lx - 1.0) / jnp.maximum(ly - 1.0, 1.0)).astype(jnp.int32)
    return jnp.clip(idx, 0, jnp.maximum(src_lengths[:, None] - 1, 0))


def copy_ranks(idx: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each position's rank from the start and from the end of its run of equal ``idx``.

    ``idx`` [B, T] is non-decreasing over the ``valid`` [B, T] positions (a prefix); a run is
    a maximal block of equal indices. Both ranks are 0 at invalid positions.
    """
    t = idx.shape[1]
    j = jnp.broadcast_to(jnp.arange(t), idx.shape)
    prev = jnp.pad(idx, ((0, 0), (1, 0)), constant_values=-1)[:, :-1]
    nxt = jnp.pad(idx, ((0, 0), (0, 1)), constant_values=-1)[:, 1:]
    next_valid = jnp.pad(valid, ((0, 0), (0, 1)))[:, 1:]
    starts = jax.lax.cummax(jnp.where(idx != prev, j, 0), axis=1)
    is_end = (idx != nxt) | ~next_valid
    ends = jax.lax.cummin(jnp.where(is_end, j, t), axis=1, reverse=True)
    return jnp.where(valid, j - starts, 0), jnp.where(valid, ends - j, 0)


class NATSeq2Seq(nnx.Module):
    """Encoder, non-causal decoder, and the recipe's heads (length, extra classes, others)."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> None:
        check_model(cfg)
        check_model_options(cfg)
        self.recipe = get_recipe(cfg.nat_recipe)
        self.upsample = self.recipe.upsample_factor(cfg)
        self.max_len = cfg.max_len
        self.target_vocab_size = cfg.target_vocab_size
        self.offset = cfg.length_mode == "offset"
        self.copy_source = cfg.decoder_input == "copy_source"
        self.has_length_head = self.recipe.has_length_head
        decoder_cfg = ml_collections.ConfigDict(cfg.to_dict())
        decoder_cfg.max_len = cfg.max_len * self.upsample
        decoder_cfg.target_vocab_size = cfg.target_vocab_size + self.recipe.extra_classes
        self.encoder = Encoder(cfg, rngs=rngs)
        self.decoder = Decoder(decoder_cfg, causal=False, rngs=rngs)
        if self.has_length_head:
            self.length_predictor = LengthPredictor(cfg.d_model, cfg.max_len, rngs=rngs)
        for name, head in self.recipe.heads(cfg, rngs=rngs).items():
            setattr(self, name, head)
        self.mark_copies = bool(cfg.mark_copies)
        if self.mark_copies:
            # Rows 0..upsample+1 by rank from the start, then as many by rank from the end;
            # each of the two added vectors has variance 1/2, so their sum has unit variance.
            init = nnx.initializers.normal(0.5**0.5)
            self.copy_marks = nnx.Embed(
                2 * (self.upsample + 2), cfg.d_model, embedding_init=init, rngs=rngs
            )

    def encode(self, src: jax.Array, *, train: bool = False) -> jax.Array:
        """``src`` [B, S] int32 -> encoder states [B, S, d]."""
        return self.encoder(src, train=train)

    # -- length ------------------------------------------------------------------------
    def length_logits(self, enc: jax.Array, src: jax.Array) -> jax.Array:
        """Raw logits over the length classes, [B, max_len + 1]."""
        return self.length_predictor(enc, src != PAD)

    def length_classes(self, tgt_lengths: jax.Array, src_lengths: jax.Array) -> jax.Array:
        """The class id [B] that encodes each target length (the length-loss target)."""
        classes = tgt_lengths
        if self.offset:
            classes = tgt_lengths - src_lengths + self.max_len // 2
        return jnp.clip(classes, 0, self.max_len).astype(jnp.int32)

    def length_log_probs(self, enc: jax.Array, src: jax.Array) -> jax.Array:
        """Log-probabilities [B, max_len + 1] over absolute lengths 0..max_len.

        In offset mode, absolute length L reads class ``L - src_len + max_len // 2``; lengths
        whose class falls outside 0..max_len get -inf and the rest are renormalized.
        """
        logits = self.length_logits(enc, src)
        if not self.offset:
            return jax.nn.log_softmax(logits, axis=-1)
        src_lengths = (src != PAD).sum(axis=1)
        lengths = jnp.arange(self.max_len + 1)[None, :]
        classes = lengths - src_lengths[:, None] + self.max_len // 2
        inside = (classes >= 0) & (classes <= self.max_len)
        gathered = jnp.take_along_axis(logits, jnp.clip(classes, 0, self.max_len), axis=1)
        return jax.nn.log_softmax(jnp.where(inside, gathered, -jnp.inf), axis=-1)

    # -- canvas ------------------------------------------------------------------------
    def canvas_tokens(self, src: jax.Array) -> jax.Array:
        """The decoder tokens [B, W] of a recipe whose canvas the source sets (its ``canvas``):
        ``eos_canvas``: MASK at all ``max_len`` positions; ``ctc`` and ``dag``: MASK at the first
        ``upsample * source_length`` of ``upsample * S`` positions, then PAD."""
        return self.recipe.canvas(self, src)

    # -- decoder -----------------------------------------------------------------------
    def decoder_inputs(self, dec_tokens: jax.Array, src: jax.Array) -> jax.Array:
        """Token vectors [B, T, d] fed to the decoder (before positions): see module doc."""
        vectors = self.decoder.embedder.tokens(dec_tokens)
        if not (self.copy_source or self.mark_copies):
            return vectors
        idx = copy_indices(
            (src != PAD).sum(axis=1), (dec_tokens != PAD).sum(axis=1), dec_tokens.shape[1]
        )
        if self.copy_source:
            src_vectors = self.encoder.embedder.tokens(src)
            copied = jnp.take_along_axis(src_vectors, idx[..., None], axis=1)
            vectors = jnp.where((dec_tokens == MASK)[..., None], copied, vectors)
        if self.mark_copies:
            valid = dec_tokens != PAD
            last = self.upsample + 1
            from_start, from_end = copy_ranks(idx, valid)
            marks = self.copy_marks(jnp.minimum(from_start, last)) + self.copy_marks(
                jnp.minimum(from_end, last) + last + 1
            )
            vectors = vectors + jnp.where(valid[..., None], marks, 0.0).astype(vectors.dtype)
        return vectors

    def decode(
        self, dec_tokens: jax.Array, enc: jax.Array, src: jax.Array, *, train: bool = False
    ) -> jax.Array:
        """Non-causal decoder: ``dec_tokens`` [B, T] -> logits [B, T, V]."""
        return self.decoder(
            dec_tokens,
            context=enc,
            context_valid=src != PAD,
            token_vectors=self.decoder_inputs(dec_tokens, src),
            train=train,
        )

    def __call__(
        self, src: jax.Array, dec_tokens: jax.Array, *, train: bool = False
    ) -> tuple[jax.Array, jax.Array | None]:
        """-> (token logits [B, T, V], length logits [B, max_len + 1] or None without a head)."""
        enc = self.encode(src, train=train)
        length = self.length_logits(enc, src) if self.has_length_head else None
        return self.decode(dec_tokens, enc, src, train=train), length
