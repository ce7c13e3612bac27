r"""The ablation sweeps: each asks "what happens if I change X?" of one small Transformer.

    python experiments/ablate.py --sweep=norm_batch --workdir=runs/ablations/norm_batch
    python experiments/ablate.py --sweep=position --workdir=/tmp/position --quick --seeds=1

Every sweep varies a few model or training keys of a common base and keeps everything else
fixed. The base is a small G2P Transformer (``G2P_BUDGET``), sized so that one run takes a
few minutes on a 2-core CPU; the synthetic reverse task (``REVERSE_BUDGET``) joins where
position is the whole point. ``--quick`` swaps the budget for each task's ``quick``
variant (a tiny model, a 2000-example dataset, 40 steps) so a test can run a sweep.

Each sweep's measured wall time is in experiments/results/ablations/<sweep>/README.md. A sweep
is declared here, as an experiment's config is beside it; ``ablate.py`` reads ``SWEEPS``
(``attnlab.sweeps.spec.load_sweeps``), and ``--sweeps_file`` names another file of the same
form.
"""

from __future__ import annotations

from attnlab.sweeps.spec import Grid, Sweep

_SMALL = {
    "model.d_model": 64,
    "model.num_heads": 4,
    "model.d_ff": 256,
    "model.num_encoder_layers": 2,
}


def _schedule(steps: int) -> dict[str, int]:
    """``steps`` steps of 64 sequences, a tenth of them warmup; logged every 100 steps,
    evaluated every 1000, saved every 500."""
    return {
        "batch_size": 64,
        "num_train_steps": steps,
        "warmup_steps": steps // 10,
        "log_every_steps": 100,
        "eval_every_steps": 1000,
        "checkpoint_every_steps": 500,
    }


# The common G2P base: 2+2 layers, d_model 64, 4000 steps of 64 words (about two epochs of
# the 121k training words), greedy decoding of the whole validation split (2462 words).
# Length buckets cut the padding of these short sequences (words of 1-32 letters, most under 12).
G2P_BUDGET = {
    **_SMALL,
    "model.num_decoder_layers": 2,
    "data.bucket_boundaries": (8, 12, 16),
    **_schedule(4000),
    "decode_method": "greedy",
    "eval_decode_examples": 2500,
}
# Reversing 1-16 symbols out of 16: the same model size; 3000 steps of 64 sequences.
REVERSE_BUDGET = {
    **_SMALL,
    "model.num_decoder_layers": 2,
    "data.bucket_boundaries": (6, 11),
    **_schedule(3000),
    "eval_decode_examples": 1024,
}
G2P = "g2p.py:at"
REVERSE = "synthetic.py:at,reverse"

# norm_batch: every run sees 128k examples (2000 steps at batch 64, one epoch), half the
# common budget, so that the batch-4 runs (32000 steps) stay short
# (experiments/results/ablations/norm_batch/README.md has times).
NORM_BUDGET = {**G2P_BUDGET, "num_train_steps": 2000, "warmup_steps": 200}
_NORMS = ("layer", "batch", "rms")
_SCORES = ("softmax", "relu", "relu_over_length", "sigmoid", "sigmoid_minus_log_length", "linear")
_POSITIONS = ("none", "sinusoidal", "learned", "rotary", "alibi")

NORM_BATCH = Sweep(
    name="norm_batch",
    question=(
        "Does the normalization layer care about the batch size? LayerNorm, BatchNorm and "
        "RMSNorm before each residual sub-layer (pre-norm) at batch sizes 4 to 128, every run "
        "seeing the same number of examples (steps scale as 1/batch size, learning-rate "
        "warmup included); plus each norm after the residual (post-norm, as in Vaswani et "
        "al. 2017) at batch 64. Expected, after Wu & He (2018) and Shen et al. (2020): "
        "BatchNorm degrades at small batches (noisy batch statistics, and a train/eval "
        "mismatch of its running statistics), LayerNorm and RMSNorm do not."
    ),
    grids=(
        Grid(
            "pre",
            G2P,
            fixed={"model.norm_position": "pre"},
            axes={"model.norm": _NORMS, "batch_size": (4, 8, 16, 32, 64, 128)},
            budget=NORM_BUDGET,
        ),
        Grid(
            "post",
            G2P,
            fixed={"model.norm_position": "post"},
            axes={"model.norm": _NORMS, "batch_size": (64,)},
            budget=NORM_BUDGET,
        ),
    ),
    plot_x="batch_size",
    fixed_examples=True,
)

ATTENTION_SCORES = Sweep(
    name="attention_scores",
    question=(
        "Which function turns attention scores into weights? softmax, relu, relu divided by "
        "the sequence length, sigmoid without and with the bias -log(length), and kernelized "
        "linear attention (elu+1 features), in self- and cross-attention. Expected, after "
        "Wortsman et al. (2023): relu/length approaches softmax, while unnormalized relu is "
        "worse; after Ramapuram et al. (2024): sigmoid needs the -log(length) bias."
    ),
    grids=(Grid("g2p", G2P, axes={"model.attention": _SCORES}, budget=G2P_BUDGET),),
)

HEADS = Sweep(
    name="heads",
    question=(
        "How many attention heads at a fixed d_model of 64 (head size 64, 32, 16, 8)? "
        "Vaswani et al. (2017, Table 3 A) found one head about 1 BLEU worse than 8, and too "
        "many heads worse again."
    ),
    grids=(Grid("g2p", G2P, axes={"model.num_heads": (1, 2, 4, 8)}, budget=G2P_BUDGET),),
    plot_x="model.num_heads",
)

POSITION = Sweep(
    name="position",
    question=(
        "Which position signal: none, sinusoidal, learned, rotary (RoPE) or ALiBi? On G2P, "
        "and on reversing a sequence, where the output order is a function of position only. "
        "Expected: without any position signal the encoder is permutation-equivariant, so "
        "reverse fails outright (the causal decoder still knows its own positions); the four "
        "position signals end close to each other on these short sequences."
    ),
    grids=(
        Grid("g2p", G2P, axes={"model.position": _POSITIONS}, budget=G2P_BUDGET),
        Grid("reverse", REVERSE, axes={"model.position": _POSITIONS}, budget=REVERSE_BUDGET),
    ),
)

ATTENTION_VS_CNN = Sweep(
    name="attention_vs_cnn",
    question=(
        "Attention or convolution as the self-attention sub-layer (cross-attention stays "
        "softmax), with kernels of 3, 5 and 9, judged on quality and on training speed "
        "(steps/s). Keep steps/s comparable: --parallel=1, or --parallel=N with the default "
        "CPU pinning (each run on its own cores). Expected: "
        "convolutions are faster; on G2P, where the letters that decide a phoneme are near "
        "it, a wide enough kernel comes close to attention."
    ),
    grids=(
        Grid("attention", G2P, fixed={"model.attention": "softmax"}, budget=G2P_BUDGET),
        Grid(
            "conv",
            G2P,
            fixed={"model.attention": "conv"},
            axes={"model.conv_kernel": (3, 5, 9)},
            budget=G2P_BUDGET,
        ),
    ),
    report_metrics=("eval_wer", "eval_per", "eval_accuracy", "eval_loss", "steps_per_sec"),
    plot_metrics=("eval_wer", "steps_per_sec"),
)

INPUT = Sweep(
    name="input",
    question=(
        "One-hot input through a linear layer versus a learned embedding table (scaled by "
        "sqrt(d_model), tied to the output projection). Both compute a per-token vector; "
        "expected: the same quality, with the embedding using fewer parameters because of tying."
    ),
    grids=(Grid("g2p", G2P, axes={"model.input": ("embedding", "one_hot")}, budget=G2P_BUDGET),),
)

# The address tagger (cn_address, 1,243 input symbols with specials): 2 layers, d_model 64,
# 1000 steps of 64 addresses (2.5 epochs of the 25.6k training addresses), scored on the whole
# validation split. Shorter than address.py's own 3000-step run
# (experiments/results/ablations/address/README.md has times).
ADDRESS_BUDGET = {**_SMALL, **_schedule(1000)}
ADDRESS = "address.py"

ADDRESS_CHOICES = Sweep(
    name="address",
    question=(
        "Which choices matter for tagging Chinese addresses? Against the base tagger (learned "
        "embedding, softmax self-attention, LayerNorm), one change at a time: one-hot input "
        "through a linear layer (1,243 input symbols, so its first layer is a "
        "1,243 x d_model matrix, the same size as the embedding table, which here is not tied "
        "to any output), a depthwise convolution (kernel 3) in place of self-attention (the "
        "task is local: a character's tag depends mostly on its neighbours and the suffixes "
        "省/市/区/县/路/号), and BatchNorm in place of LayerNorm. Judged on token accuracy "
        "and loss on the validation split, and training speed."
    ),
    grids=(
        Grid("base", ADDRESS, budget=ADDRESS_BUDGET),
        Grid("one_hot", ADDRESS, fixed={"model.input": "one_hot"}, budget=ADDRESS_BUDGET),
        Grid("conv", ADDRESS, fixed={"model.attention": "conv"}, budget=ADDRESS_BUDGET),
        Grid("batchnorm", ADDRESS, fixed={"model.norm": "batch"}, budget=ADDRESS_BUDGET),
    ),
    metric="eval_accuracy",
    lower_is_better=False,
    report_metrics=("eval_accuracy", "eval_loss", "steps_per_sec"),
    plot_metrics=("eval_accuracy", "steps_per_sec"),
)

SWEEPS: dict[str, Sweep] = {
    s.name: s
    for s in (
        NORM_BATCH,
        ATTENTION_SCORES,
        HEADS,
        POSITION,
        ATTENTION_VS_CNN,
        INPUT,
        ADDRESS_CHOICES,
    )
}
