"""``attention = conv``: a depthwise 1-D convolution that replaces self-attention.

    y_t = W^O ( sum_{i=0}^{k-1} w_i * x_{t - a + i} + b )

with one kernel ``w`` [k, d] per feature (depthwise, as in the lightweight convolutions of
Wu et al. 2019, without their softmax-normalized shared kernels), followed by the output
projection W^O that mixes features. The encoder pads ``a = (k-1)//2`` positions on the left
and ``k-1-a`` on the right (centred); the decoder pads ``a = k-1`` on the left only, so
``y_t`` sees ``x_{t-k+1..t}`` (causal). Padding positions of ``x`` are zeroed before the
convolution, so they never leak into real positions. Unlike attention, the output depends on
where a token sits relative to its neighbours, so the layer is not permutation-equivariant.

Incremental decoding keeps a rolling buffer of the last ``k-1`` inputs ``[B, k-1, d]``,
initialized with zeros (the causal left padding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

Cache = dict[str, jax.Array]


class ConvMixer(nnx.Module):
    """Depthwise convolution over the sequence, same in/out shapes as self-attention."""

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
