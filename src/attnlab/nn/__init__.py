"""attnlab.nn: Flax NNX modules that own the parameters and call ops/.

The models: ``Seq2Seq`` (seq2seq.py), ``Tagger`` and ``Classifier`` (encoders.py), each built
from a model config (``model_config``); ``attnlab.train.models.build_model`` builds the one a
config names (the NAT, ``attnlab.nat.model.NATSeq2Seq``, sits a floor above, with its
recipes). The building blocks live in two files: ``attention.py`` (``MultiHeadAttention``
with its KV cache, ``ConvMixer``) and ``layers.py`` (norms, input embeddings, feed-forward,
encoder and decoder layers, the ``Encoder`` and ``Decoder`` stacks).
"""

from __future__ import annotations

from attnlab.nn.config import model_config
from attnlab.nn.encoders import Classifier, Tagger
from attnlab.nn.seq2seq import Seq2Seq

__all__ = [
    "Classifier",
    "Seq2Seq",
    "Tagger",
    "model_config",
]
