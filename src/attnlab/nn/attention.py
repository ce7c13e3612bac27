"""The sequence mixers of a layer: multi-head attention with its KV cache, and the conv mixer.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,  head_i = Attn(Q W_i^Q, K W_i^K, V W_i^V)

(Vaswani et al. 2017, section 3.2.2), a thin NNX module over ops/. ``Attn`` is chosen by
``model.attention``:

- ``softmax | relu | relu_over_length | sigmoid | sigmoid_minus_log_length``:
  ``ops.dot_product_attention(scores=...)``.
- ``linear``: ``ops.linear_attention`` (elu+1 feature map; causal in the decoder).
- ``chunked``: ``ops.chunked_attention`` with ``chunk_size`` query and key chunks.
- ``local``: dense softmax under ``ops.local_mask(local_window)`` (each query sees keys within
  the window; causal in the decoder).
- ``conv`` replaces self-attention altogether with ``ConvMixer`` (below).

The query, value and output projections carry a bias; the key projection does not. A key bias
b adds q.b to every score of query q's row, and a softmax row does not change when one
constant is added to all its scores, so under softmax (also chunked and local) the key bias
has no effect and a zero gradient: what training computed for it was rounding noise, which
Adam scaled up to full-size steps (tests/nn/test_key_bias.py). Under relu, sigmoid and
linear scores a key bias would act; the projections are the same for every choice.

Positions: ``rotary`` rotates q and k (``ops.apply_rotary``) and ``alibi`` adds
``ops.alibi_bias`` to the scores. Both act on self-attention only; cross-attention carries no
position signal. Cross-attention uses the model's attention choice, except that ``local`` and
``conv`` models use softmax cross-attention (a window over another sequence's positions, or a
convolution across two sequences, has no meaning).

Incremental decoding (``init_cache`` / ``step``) keeps K/V buffers ``[B, max_len, H, Dh]``.
A step writes the new key and value at ``index`` and attends its one query over the buffer
under the row ``index`` of the same masks (causal, local) and ALiBi bias that the full pass
uses, so it reproduces the full pass position by position. ``chunked`` is computed densely at
one query (the same function), and ``linear`` runs ``ops.linear_attention`` over the buffer
with the keys up to ``index`` unmasked, which equals row ``index`` of causal linear attention.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attnlab.choices import check_choice
from attnlab.nn.config import ATTENTIONS, POSITIONS, SCORE_FUNCTIONS, check_position_fits
from attnlab.ops import attention as ops_attn
from attnlab.ops import positional

Cache = dict[str, jax.Array]


class MultiHeadAttention(nnx.Module):
    """Self- or cross-attention with Q/K/V projections and the output projection W^O.

    Self-attention: ``attn(x, valid=valid)``; cross-attention: ``attn(x, valid=valid,
    context=enc, context_valid=src_valid)``. ``valid`` [B, T] is True at real tokens; padded
    keys are never attended.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        attention: str,
        position: str = "none",
        causal: bool = False,
        local_window: int = 8,
        chunk_size: int = 32,
        rngs: nnx.Rngs,
    ) -> None:
        check_choice("model.attention", attention, ATTENTIONS)
        check_choice("model.position", position, POSITIONS)
        if attention == "conv":
            raise ValueError("attention 'conv' is ConvMixer, not MultiHeadAttention")
        check_position_fits(attention, position)
        self.attention = attention
        self.position = position
        self.causal = causal
        self.num_heads = num_heads
        self.local_window = local_window
        self.chunk_size = chunk_size
        # Set by ``capture_cross_attention`` / ``capture_self_attention``: attention then sows
        # its weights as ``nnx.Intermediate`` "cross_weights" [B, H, T, S] or "self_weights"
        # [B, H, T, T] (analysis only, never in training).
        self.capture_weights = False
        self.query = nnx.Linear(d_model, d_model, rngs=rngs)
        self.key = nnx.Linear(d_model, d_model, use_bias=False, rngs=rngs)  # no bias: see above
        self.value = nnx.Linear(d_model, d_model, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, rngs=rngs)

    # -- helpers -------------------------------------------------------------------------
    def _heads(self, proj: nnx.Linear, x: jax.Array) -> jax.Array:
        return ops_attn.split_heads(proj(x), self.num_heads)

    def _attend(self, q, k, v, *, mask, key_mask, bias, causal, one_query=False):
        """Dispatch on the attention choice. ``mask`` includes ``key_mask`` and causality."""
        kind = self.attention
        if kind == "linear":
            return ops_attn.linear_attention(q, k, v, mask=key_mask, causal=causal)
        if kind == "chunked" and not one_query:
            return ops_attn.chunked_attention(
                q,
                k,
                v,
                mask=key_mask,
                bias=bias,
                causal=causal,
                query_chunk=self.chunk_size,
                key_chunk=self.chunk_size,
            )
        scores = kind if kind in SCORE_FUNCTIONS else "softmax"
        return ops_attn.dot_product_attention(q, k, v, mask=mask, bias=bias, scores=scores)

    # -- full pass -----------------------------------------------------------------------
    def __call__(
        self,
        x: jax.Array,
        *,
        valid: jax.Array,
        context: jax.Array | None = None,
        context_valid: jax.Array | None = None,
    ) -> jax.Array:
        """``x`` [B, T, d] -> [B, T, d]. Self-attention unless ``context`` [B, S, d] is given."""
        if context is not None:
            return self.cross(x, self.context_kv(context), context_valid)
        length = x.shape[1]
        q, k, v = (self._heads(p, x) for p in (self.query, self.key, self.value))
        if self.position == "rotary":
            positions = jnp.arange(length)
            q = positional.apply_rotary(q, positions)
            k = positional.apply_rotary(k, positions)
        key_mask = valid[:, None, None, :]
        mask = key_mask
        if self.causal:
            mask = mask & ops_attn.causal_mask(length)
        if self.attention == "local":
            mask = mask & ops_attn.local_mask(length, self.local_window, causal=self.causal)
        bias = None
        if self.position == "alibi":
            bias = positional.alibi_bias(self.num_heads, length, length)
        if self.capture_weights and self.attention not in ("linear", "chunked"):
            scores = self.attention if self.attention in SCORE_FUNCTIONS else "softmax"
            weights = ops_attn.attention_weights(q, k, mask=mask, bias=bias, scores=scores)
            self.sow(nnx.Intermediate, "self_weights", weights)
        out = self._attend(q, k, v, mask=mask, key_mask=key_mask, bias=bias, causal=self.causal)
        return self.out(ops_attn.merge_heads(out))

    # -- cross-attention -----------------------------------------------------------------
    def context_kv(self, context: jax.Array) -> Cache:
        """Keys and values of the context [B, S, d], each [B, S, H, Dh] (cacheable)."""
        return {"k": self._heads(self.key, context), "v": self._heads(self.value, context)}

    def cross(self, x: jax.Array, kv: Cache, context_valid: jax.Array) -> jax.Array:
        """Attend queries from ``x`` [B, T, d] over precomputed context ``kv``."""
        q = self._heads(self.query, x)
        key_mask = context_valid[:, None, None, :]
        if self.capture_weights and self.attention not in ("linear", "chunked"):
            scores = self.attention if self.attention in SCORE_FUNCTIONS else "softmax"
            weights = ops_attn.attention_weights(q, kv["k"], mask=key_mask, scores=scores)
            self.sow(nnx.Intermediate, "cross_weights", weights)
        out = self._attend(
            q,
            kv["k"],
            kv["v"],
            mask=key_mask,
            key_mask=key_mask,
            bias=None,
            causal=False,
            one_query=x.shape[1] == 1,
        )
        return self.out(ops_attn.merge_heads(out))

    # -- incremental decoding ------------------------------------------------------------
    def init_cache(self, batch: int, max_len: int, dtype=jnp.float32) -> Cache:
        """Empty self-attention K/V buffers, each [B, max_len, H, Dh]."""
        head_dim = self.query.out_features // self.num_heads
        shape = (batch, max_len, self.num_heads, head_dim)
        return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}

    def step(self, x: jax.Array, cache: Cache, index: jax.Array) -> tuple[jax.Array, Cache]:
        """One causal self-attention step: ``x`` [B, 1, d] at positions ``index`` [B]."""
        if not self.causal:
            raise ValueError("incremental decoding needs causal self-attention")
        batch, max_len = cache["k"].shape[:2]
        q, k, v = (self._heads(p, x) for p in (self.query, self.key, self.value))
        if self.position == "rotary":
            q = positional.apply_rotary(q, index[:, None])
            k = positional.apply_rotary(k, index[:, None])
        rows = jnp.arange(batch)
        cache = {
            "k": cache["k"].at[rows, index].set(k[:, 0]),
            "v": cache["v"].at[rows, index].set(v[:, 0]),
        }
        # Row `index` of the full pass's masks and bias (the same ops, so the same values).
        allowed = ops_attn.causal_mask(max_len)[0, 0][index]  # [B, max_len]
        if self.attention == "local":
            allowed = (
                allowed & ops_attn.local_mask(max_len, self.local_window, causal=True)[0, 0][index]
            )
        mask = allowed[:, None, None, :]
        bias = None
        if self.position == "alibi":
            table = positional.alibi_bias(self.num_heads, max_len, max_len)[0]  # [H, L, L]
            bias = jnp.transpose(table[:, index, :], (1, 0, 2))[:, :, None, :]
        out = self._attend(
            q,
            cache["k"],
            cache["v"],
            mask=mask,
            key_mask=mask,
            bias=bias,
            causal=False,
            one_query=True,
        )
        return self.out(ops_attn.merge_heads(out)), cache


class ConvMixer(nnx.Module):
    """``attention = conv``: a depthwise 1-D convolution in place of self-attention.

        y_t = W^O ( sum_{i=0}^{k-1} w_i * x_{t - a + i} + b )

    with one kernel ``w`` [k, d] per feature (depthwise, as in the lightweight convolutions of
    Wu et al. 2019, without their softmax-normalized shared kernels), followed by the output
    projection W^O that mixes features. The encoder pads ``a = (k-1)//2`` positions on the
    left and ``k-1-a`` on the right (centred); the decoder pads ``a = k-1`` on the left only,
    so ``y_t`` sees ``x_{t-k+1..t}`` (causal). Padding positions of ``x`` are zeroed before the
    convolution, so they never leak into real positions. Unlike attention, the output depends
    on where a token sits relative to its neighbours, so the layer is not
    permutation-equivariant. Incremental decoding keeps a rolling buffer of the last ``k-1``
    inputs ``[B, k-1, d]``, initialized with zeros (the causal left padding).
    """

    def __init__(self, d_model: int, *, kernel: int, causal: bool, rngs: nnx.Rngs) -> None:
        if kernel < 1:
            raise ValueError(f"conv_kernel must be >= 1, got {kernel}")
        self.kernel = kernel
        self.causal = causal
        self.conv = nnx.Conv(
            d_model,
            d_model,
            kernel_size=(kernel,),
            padding="VALID",
            feature_group_count=d_model,
            rngs=rngs,
        )
        self.out = nnx.Linear(d_model, d_model, rngs=rngs)

    def __call__(self, x: jax.Array, *, valid: jax.Array) -> jax.Array:
        """``x`` [B, T, d] -> [B, T, d]; ``valid`` [B, T] marks real tokens."""
        x = jnp.where(valid[..., None], x, 0.0)
        left = self.kernel - 1 if self.causal else (self.kernel - 1) // 2
        right = self.kernel - 1 - left
        return self.out(self.conv(jnp.pad(x, ((0, 0), (left, right), (0, 0)))))

    def init_cache(self, batch: int, max_len: int, dtype=jnp.float32) -> Cache:
        """The rolling buffer of the previous ``kernel - 1`` inputs, zeros at the start."""
        return {"conv": jnp.zeros((batch, self.kernel - 1, self.conv.in_features), dtype)}

    def step(self, x: jax.Array, cache: Cache, index: jax.Array) -> tuple[jax.Array, Cache]:
        """One causal step: ``x`` [B, 1, d] -> [B, 1, d]; the buffer slides by one."""
        if not self.causal:
            raise ValueError("incremental decoding needs a causal conv")
        window = jnp.concatenate([cache["conv"], x], axis=1)  # [B, kernel, d]
        return self.out(self.conv(window)), {"conv": window[:, 1:]}


def make_self_attention(
    cfg: ml_collections.ConfigDict, *, causal: bool, rngs: nnx.Rngs
) -> MultiHeadAttention | ConvMixer:
    """The self-attention sub-layer named by ``model.attention`` (``conv`` gives ConvMixer)."""
    if cfg.attention == "conv":
        return ConvMixer(cfg.d_model, kernel=cfg.conv_kernel, causal=causal, rngs=rngs)
    return MultiHeadAttention(
        cfg.d_model,
        cfg.num_heads,
        attention=cfg.attention,
        position=cfg.position,
        causal=causal,
        local_window=cfg.local_window,
        chunk_size=cfg.chunk_size,
        rngs=rngs,
    )


def make_cross_attention(cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> MultiHeadAttention:
    """Cross-attention: the model's choice, but softmax for ``local`` and ``conv`` models."""
    kind = "softmax" if cfg.attention in ("local", "conv") else cfg.attention
    return MultiHeadAttention(
        cfg.d_model, cfg.num_heads, attention=kind, chunk_size=cfg.chunk_size, rngs=rngs
    )


def capture_cross_attention(model: nnx.Module, fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and return ``(result, maps)``: ``maps`` lists every decoder
    layer's cross-attention weights [B, H, T, S] in layer order.

    Unjitted and for analysis only: the weights are recomputed with
    ``ops.attention.attention_weights`` from the same queries and keys. Linear and chunked
    attention have no weight matrix to show, so they give no maps.
    """
    return _capture(model, "cross_weights", fn, *args, **kwargs)


def capture_self_attention(model: nnx.Module, fn, *args, **kwargs):
    """Like ``capture_cross_attention``, for self-attention: ``maps`` lists the weights
    [B, H, T, T] of every self-attention layer the call ran (an encoder's, in layer order)."""
    return _capture(model, "self_weights", fn, *args, **kwargs)


def _capture(model: nnx.Module, name: str, fn, *args, **kwargs):
    model.set_attributes(capture_weights=True, raise_if_not_found=False)
    try:
        result = fn(*args, **kwargs)
    finally:
        model.set_attributes(capture_weights=False, raise_if_not_found=False)
    sown = nnx.pop(model, nnx.Intermediate)
    flat = sorted(nnx.to_flat_state(sown), key=lambda item: item[0])  # layer order
    return result, [v.get_value()[0] for path, v in flat if path[-1] == name]
