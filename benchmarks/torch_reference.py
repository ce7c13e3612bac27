r"""The PyTorch reference of ``benchmarks/training.py``: our Seq2Seq and its train step in torch.

``TorchSeq2Seq`` is ``torch.nn.Transformer`` (norm_first, batch_first, ReLU, the same sizes and
LayerNorm eps) between our embeddings (scaled by sqrt(d), interleaved sinusoids, dropout) and
a tied output projection. ``torch_trainer`` takes the same step as
``attnlab.train.steps.make_train_step``: label-smoothed cross-entropy over non-PAD targets,
``clip_grad_norm_``, then ``torch.optim.AdamW`` (fused) with the same hyperparameters, decay
mask and schedule. ``nn.Transformer`` also drops out attention weights and the FFN hidden
layer, which our model does not (``attention_dropout`` 0, no FFN dropout): those two are
switched off, so both drop out exactly the same tensors. Ours has no key bias, so the key
third of each ``in_proj_bias`` is held at zero and left out of ``num_params``. ``copy_params``
copies our weights in, and ``loss_difference`` checks that the two compute the same loss
(``tests/benchmarks/test_training_bench.py``).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from attnlab.specials import BOS, PAD
from attnlab.train.losses import shift_right, smoothed_cross_entropy
from attnlab.train.steps import merge_model

# OpenMP threads that spin while they wait for work (libgomp's default) make PyTorch many
# times slower on a machine shared with other jobs (docs/performance.md has the figures). Passive
# waiting is the fair setting for a shared machine; it must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as error:  # pragma: no cover - torch is the bench extra
    raise SystemExit(
        "the PyTorch reference needs torch: pip install torch==2.13.0 (the bench extra)"
    ) from error


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...), interleaved."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, two_i / dim)
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return table.float()


class TorchSeq2Seq(nn.Module):
    """``nn.Transformer`` with scaled embeddings, sinusoidal positions and a tied output."""

    def __init__(self, cfg: ml_collections.ConfigDict) -> None:
        super().__init__()
        d = cfg.d_model
        self.d_model = d
        self.src_embed = nn.Embedding(cfg.vocab_size, d)
        self.tgt_embed = nn.Embedding(cfg.target_vocab_size, d)
        for table in (self.src_embed, self.tgt_embed):
            nn.init.normal_(table.weight, std=d**-0.5)
        self.register_buffer("positions", sinusoids(cfg.max_len, d), persistent=False)
        self.dropout = nn.Dropout(cfg.dropout)
        with warnings.catch_warnings():  # nested tensors are an inference path; not used here
            warnings.simplefilter("ignore")
            self.transformer = nn.Transformer(
                d_model=d,
                nhead=cfg.num_heads,
                num_encoder_layers=cfg.num_encoder_layers,
                num_decoder_layers=cfg.num_decoder_layers,
                dim_feedforward=cfg.d_ff,
                dropout=cfg.dropout,
                activation="relu",
                layer_norm_eps=cfg.norm_eps,
                batch_first=True,
                norm_first=True,
            )
        layers = [*self.transformer.encoder.layers, *self.transformer.decoder.layers]
        self.attentions = [
            attention
            for layer in layers
            for attention in (layer.self_attn, getattr(layer, "multihead_attn", None))
            if attention is not None
        ]
        for layer in layers:  # ours drops out neither attention weights nor the FFN hidden layer
            layer.dropout = nn.Identity()
        keep = torch.ones(3 * d)
        keep[d : 2 * d] = 0.0
        for attention in self.attentions:
            attention.dropout = cfg.attention_dropout
            # Ours has no key bias (attnlab/nn/attention.py): the key third of in_proj_bias
            # is held at zero (zero gradient, so AdamW never moves it) and is not counted.
            with torch.no_grad():
                attention.in_proj_bias.mul_(keep)
            attention.in_proj_bias.register_hook(lambda grad: grad * keep)

    def num_params(self) -> int:
        """The parameters our Seq2Seq has: every one but the key biases held at zero."""
        key_biases = self.d_model * len(self.attentions)
        return sum(p.numel() for p in self.parameters()) - key_biases

    def embed(self, table: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        x = table(tokens) * math.sqrt(self.d_model) + self.positions[: tokens.shape[1]]
        return self.dropout(x)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        causal = torch.ones(tgt_in.shape[1], tgt_in.shape[1], dtype=torch.bool).triu(1)
        src_pad = src == PAD
        out = self.transformer(
            self.embed(self.src_embed, src),
            self.embed(self.tgt_embed, tgt_in),
            tgt_mask=causal,
            src_key_padding_mask=src_pad,
            tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=src_pad,
            tgt_is_causal=True,
        )
        return F.linear(out, self.tgt_embed.weight)


def torch_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label-smoothed cross-entropy, mean over the non-PAD targets."""
    flat = logits.reshape(-1, logits.shape[-1]).float()
    return F.cross_entropy(flat, targets.reshape(-1), ignore_index=PAD, label_smoothing=smoothing)


def torch_trainer(model: TorchSeq2Seq, config: ml_collections.ConfigDict):
    """``step(batch) -> metrics``: the same update as ``attnlab.train`` (clip, AdamW, schedule)."""
    from attnlab.train.optim import learning_rate_schedule

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay}],
        lr=config.learning_rate,
        betas=(config.adam_b1, config.adam_b2),
        eps=config.adam_eps,
        weight_decay=0.0,
        fused=True,
    )
    schedule = learning_rate_schedule(config)
    peak = float(config.learning_rate)
    table = np.asarray(schedule(jnp.arange(config.num_train_steps + 1))) / peak
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda count: float(table[min(count, len(table) - 1)])
    )

    def step(src: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        model.train()
        tgt_in = torch.cat([torch.full_like(targets[:, :1], BOS), targets[:, :-1]], dim=1)
        logits = model(src, tgt_in)
        loss = torch_loss(logits, targets, config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():  # the metrics our step returns besides the loss
            mask = targets != PAD
            nll = torch_loss(logits, targets, 0.0)
            accuracy = ((logits.argmax(-1) == targets) & mask).sum() / mask.sum()
        return {"loss": loss.item(), "nll": nll.item(), "accuracy": accuracy.item(),
                "grad_norm": grad_norm.item()}  # fmt: skip

    return step


def copy_params(params: dict, model: TorchSeq2Seq) -> None:
    """Load our parameters (``nnx.State.to_pure_dict()``) into the PyTorch reference."""

    def t(array: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(array, np.float32))

    def attention(ours: dict, theirs: nn.MultiheadAttention) -> None:
        qkv = [ours[n] for n in ("query", "key", "value")]
        theirs.in_proj_weight.copy_(torch.cat([t(p["kernel"]).T for p in qkv]))
        no_key_bias = torch.zeros(ours["value"]["bias"].shape)
        biases = [t(ours["query"]["bias"]), no_key_bias, t(ours["value"]["bias"])]
        theirs.in_proj_bias.copy_(torch.cat(biases))
        linear(ours["out"], theirs.out_proj)

    def linear(ours: dict, theirs: nn.Linear) -> None:
        theirs.weight.copy_(t(ours["kernel"]).T)
        theirs.bias.copy_(t(ours["bias"]))

    def norm(ours: dict, theirs: nn.LayerNorm) -> None:
        theirs.weight.copy_(t(ours["scale"]))
        theirs.bias.copy_(t(ours["bias"]))

    with torch.no_grad():
        for side, table in (("encoder", model.src_embed), ("decoder", model.tgt_embed)):
            stack, theirs = params[side], getattr(model.transformer, side)
            table.weight.copy_(t(stack["embedder"]["tokens"]["embed"]["embedding"]))
            norm(stack["final_norm"], theirs.norm)
            for i, layer in enumerate(theirs.layers):
                ours = stack["layers"][i]
                attention(ours["attn"], layer.self_attn)
                linear(ours["ffn"]["hidden"], layer.linear1)
                linear(ours["ffn"]["output"], layer.linear2)
                names = ["attn_norm", "ffn_norm"] if side == "encoder" else ["attn_norm"]
                if side == "decoder":
                    attention(ours["cross"], layer.multihead_attn)
                    names += ["cross_norm", "ffn_norm"]
                for k, name in enumerate(names):
                    norm(ours[name], getattr(layer, f"norm{k + 1}"))


def loss_difference(graphdef, state, model: TorchSeq2Seq, batch: dict, smoothing: float) -> float:
    """|our loss - the reference's| with the same weights, dropout off: the same function."""
    copy_params(state["params"].to_pure_dict(), model)
    ours = merge_model(graphdef, state)
    src, targets = jnp.asarray(batch["inputs"]), jnp.asarray(batch["targets"])
    logits = ours(src, shift_right(targets), train=False)
    total, _, _ = smoothed_cross_entropy(logits, targets, targets != PAD, smoothing)
    jax_loss = float(total) / float(np.count_nonzero(batch["targets"]))
    model.eval()
    src_t, tgt_t = torch.from_numpy(batch["inputs"]).long(), torch.from_numpy(batch["targets"])
    tgt_in = torch.cat([torch.full_like(tgt_t[:, :1], BOS), tgt_t[:, :-1]], dim=1).long()
    with torch.no_grad():
        torch_value = float(torch_loss(model(src_t, tgt_in), tgt_t.long(), smoothing))
    return abs(jax_loss - torch_value)
