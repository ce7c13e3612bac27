"""``build_model``: the model a model config names, from any floor below training.

The models live on two floors: ``Seq2Seq``, ``Tagger`` and ``Classifier`` in ``attnlab.nn``,
and the NAT (``NATSeq2Seq``) in ``attnlab.nat`` above it, with its recipes. Training is the
lowest floor that sees both, so the table of model names is here.
"""

from __future__ import annotations

import ml_collections
from flax import nnx

from attnlab.choices import check_choice
from attnlab.nat.model import NATSeq2Seq
from attnlab.nn import Classifier, Seq2Seq, Tagger
from attnlab.nn.config import MODEL_NAMES

MODELS = {"seq2seq": Seq2Seq, "nat": NATSeq2Seq, "tagger": Tagger, "classifier": Classifier}
assert tuple(MODELS) == MODEL_NAMES


def build_model(cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> nnx.Module:
    """The model named by ``cfg.name`` (``seq2seq | nat | tagger | classifier``)."""
    return MODELS[check_choice("model.name", cfg.name, MODEL_NAMES)](cfg, rngs=rngs)
