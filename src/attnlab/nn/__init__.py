"""attnlab.nn: Flax NNX modules that own the parameters and call ops/.

``build_model(cfg, rngs=...)`` builds the model named by ``cfg.name`` from a model config
(``model_config``). The building blocks live in two files: ``attention.py``
(``MultiHeadAttention`` with its KV cache, ``ConvMixer``) and ``layers.py`` (norms, input
embeddings, feed-forward, encoder and decoder layers, the ``Encoder`` and ``Decoder``
stacks). ``seq2seq.py`` (AT), ``nat.py`` (NAT) and ``encoders.py`` (``Tagger``,
``Classifier``) put them together.
"""

from __future__ import annotations

import ml_collections
from flax import nnx

from attnlab.choices import check_choice
from attnlab.nn.config import MODEL_NAMES, model_config
from attnlab.nn.encoders import Classifier, Tagger
from attnlab.nn.nat import LengthPredictor, NATSeq2Seq
from attnlab.nn.seq2seq import Seq2Seq

_MODELS = {"seq2seq": Seq2Seq, "nat": NATSeq2Seq, "tagger": Tagger, "classifier": Classifier}


def build_model(cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> nnx.Module:
    """The model named by ``cfg.name`` (``seq2seq | nat | tagger | classifier``)."""
    return _MODELS[check_choice("model.name", cfg.name, MODEL_NAMES)](cfg, rngs=rngs)


__all__ = [
    "Classifier",
    "LengthPredictor",
    "NATSeq2Seq",
    "Seq2Seq",
    "Tagger",
    "build_model",
    "model_config",
]
