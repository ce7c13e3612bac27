"""attnlab: a JAX/Flax NNX lab for studying how Transformers work.

``attnlab.load(workdir)`` restores a trained model for prediction (``attnlab.inference``).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``load`` is imported on first use, not here: it pulls in jax, flax, orbax and TFDS
    # (seconds), and every ``import attnlab.<anything>`` runs this file first.
    if name == "load":
        from attnlab.inference import load

        return load
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
