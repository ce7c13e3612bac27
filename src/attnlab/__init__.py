"""attnlab: a JAX/Flax NNX lab for studying how Transformers work."""

__version__ = "0.1.0"
