"""attnlab.ops: pure jax functions (no parameters, no Flax, no state).

- ``attention``: dense attention with softmax/relu/relu_over_length/sigmoid/
  sigmoid_minus_log_length scores, linear attention, chunked (online-softmax) attention,
  masks, head reshapes.
- ``norms``: layer, RMS and batch normalization.
- ``positional``: sinusoidal encodings, rotary embeddings, ALiBi.
"""

from attnlab.ops import attention, norms, positional

__all__ = ["attention", "norms", "positional"]
