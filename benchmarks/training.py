r"""Training throughput: the ``g2p.py:at`` train step against a PyTorch reference, and MFU.

    python benchmarks/training.py            # buckets 8, 12, 16; 7 min on the shared 2 cores
    python benchmarks/training.py --quick    # bucket 12 only, >= 3 repetitions

Issue 8, benchmark 3. One process times, interleaved (``common.interleaved_times``):
- ``jax``: ``attnlab.train.steps.make_train_step`` for ``experiments/configs/g2p.py:at``
  (Seq2Seq, d_model 192, 4 heads, d_ff 768, 3+3 pre-norm layers, sinusoidal positions, tied
  output embedding, dropout 0.1, label smoothing 0.1, global-norm clipping at 1.0, then AdamW
  b1 0.9, b2 0.98, eps 1e-9, weight decay (0 here) on matrices only, rsqrt schedule);
- ``torch``: the same model and step in PyTorch on CPU: ``torch.nn.Transformer`` (norm_first,
  batch_first, ReLU, the same sizes and LayerNorm eps) between our embeddings (scaled by
  sqrt(d), interleaved sinusoids, dropout) and a tied output projection; label-smoothed
  cross-entropy over non-PAD targets; ``clip_grad_norm_`` then ``torch.optim.AdamW`` (fused)
  with the same hyperparameters, decay mask and schedule. ``nn.Transformer`` also drops out
  attention weights and the FFN hidden layer, which our model does not (``attention_dropout``
  0, no FFN dropout): those two are switched off, so both drop out exactly the same tensors;
- ``matmul``: a jitted 2048x2048 float32 ``jnp.dot``, the machine's matmul peak, measured in
  the same repetitions so that MFU is a ratio of two interleaved times like the rest.

PyTorch runs on as many threads as JAX has cores (``--threads``), with
``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (see below why).

Batches are fixed and synthetic, shaped like the g2p length buckets (B = 128, source and
target padded to the same bucket length; cmudict_g2p vocabularies of 33 and 44 ids). Lengths
are uniform between 0.55 L and L (targets within one of the source), so about 78% of the
positions are tokens: real bucketed batches hold 77-84% (200 batches, seed 0). Both
contenders get the same batch and count the same tokens: non-PAD target tokens (the EOS
included), the positions the loss is taken over. (The training loop's ``tokens_per_sec``
adds the source tokens; the ratio of the two contenders is the same either way.)

FLOPs of one step: XLA's ``cost_analysis()`` of the compiled JAX step, and an analytic count
of the matmuls on the padded shapes, 6 x (multiply-adds of the forward pass) = 6 x params x
positions (encoder weights over source positions, decoder weights over target positions, the
cross-attention K/V over source positions, the tied projection over target positions) plus
the attention terms 12 B d (L_enc S^2 + L_dec (T^2 + T S)) (QK^T and AV, forward and
backward). MFU = analytic FLOPs / step time / matmul peak, median over repetitions.

The measured figures are in docs/performance.md; the step's profile, piece by piece, in
docs/training_profile.md.

Targets: JAX tokens/s at least 1.25x PyTorch's, and MFU at least 40%, in every bucket.
The figures go into the ``training`` section of ``benchmarks/results.json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from attnlab.specials import PAD  # noqa: E402
from attnlab.train.resolve import create_train_state  # noqa: E402
from attnlab.train.steps import make_train_step  # noqa: E402
from benchmarks import common, torch_reference  # noqa: E402

torch = torch_reference.torch  # imported there, after OMP_WAIT_POLICY is set

SECTION = "training"
TARGET_SPEEDUP = 1.25  # JAX tokens/s over PyTorch tokens/s
TARGET_MFU = 0.40
PEAK_SIZE = 2048


# --- FLOPs ----------------------------------------------------------------------------------
def xla_flops(compiled: Any) -> float:
    """The ``flops`` of XLA's cost analysis of a compiled executable."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis["flops"])


def param_count(params: Any) -> int:
    return sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(params))


# --- one bucket -----------------------------------------------------------------------------
def measure_bucket(
    config: ml_collections.ConfigDict, length: int, repeats: int, min_seconds: float, seed: int = 0
) -> dict[str, Any]:
    """One row: the JAX and PyTorch train steps on one bucket shape, with the matmul peak."""
    cfg = config.model
    batch = common.synthetic_batch(
        seed, config.batch_size, length, (cfg.vocab_size, cfg.target_vocab_size)
    )
    graphdef, state, optimizer = create_train_state(config)
    torch.manual_seed(seed)
    reference = torch_reference.TorchSeq2Seq(cfg)
    loss_diff = torch_reference.loss_difference(
        graphdef, state, reference, batch, config.label_smoothing
    )
    jax_params = param_count(state["params"])
    torch_params = reference.num_params()

    device_batch = {k: jnp.asarray(v) for k, v in batch.items()}
    step_fn = make_train_step(graphdef, optimizer, config)
    compiled = step_fn.lower(state, device_batch, jnp.asarray(1, jnp.int32)).compile()
    holder = {"state": state, "step": 1}

    def run_jax():
        step = jnp.asarray(holder["step"], jnp.int32)
        holder["state"], metrics = compiled(holder["state"], device_batch, step)
        holder["step"] += 1
        return metrics

    torch_step = torch_reference.torch_trainer(reference, config)
    src_t = torch.from_numpy(batch["inputs"]).long()
    tgt_t = torch.from_numpy(batch["targets"]).long()
    a, b = common.random_arrays(seed, (PEAK_SIZE, PEAK_SIZE), 2)
    matmul = jax.jit(jnp.dot)
    times = common.interleaved_times(
        {"jax": run_jax, "torch": lambda: torch_step(src_t, tgt_t), "matmul": lambda: matmul(a, b)},
        repeats,
        warmup=2,
        min_seconds=min_seconds,
    )
    tokens = int(np.count_nonzero(batch["targets"]))
    flops, attention_flops = common.analytic_flops(cfg, config.batch_size, length, length)
    peak_flops = 2 * PEAK_SIZE**3
    speedup = common.paired_ratio(times["torch"], times["jax"])
    jax_mfu = common.paired_ratio(times["matmul"], times["jax"])["median"] * flops / peak_flops
    torch_mfu = common.paired_ratio(times["matmul"], times["torch"])["median"] * flops / peak_flops
    xla = xla_flops(compiled)
    jax_s, torch_s = float(np.median(times["jax"])), float(np.median(times["torch"]))
    return {
        "S": length,
        "T": length,
        "B": config.batch_size,
        "tokens": tokens,
        "src_fill": float(np.mean(batch["inputs"] != PAD)),
        "tgt_fill": float(np.mean(batch["targets"] != PAD)),
        "jax_s": jax_s,
        "torch_s": torch_s,
        "jax_tokens_per_s": tokens / jax_s,
        "torch_tokens_per_s": tokens / torch_s,
        "speedup": speedup["median"],
        "speedup_q25": speedup["q25"],
        "speedup_q75": speedup["q75"],
        "peak_gflops": peak_flops / float(np.median(times["matmul"])) / 1e9,
        "analytic_gflop": flops / 1e9,
        "attention_gflop": attention_flops / 1e9,
        "xla_gflop": xla / 1e9,
        "mfu": jax_mfu,
        "xla_mfu": jax_mfu * xla / flops,
        "torch_mfu": torch_mfu,
        "jax_params": jax_params,
        "torch_params": torch_params,
        "loss_diff": loss_diff,
        "repeats": len(times["jax"]),
        "met": speedup["median"] >= TARGET_SPEEDUP and jax_mfu >= TARGET_MFU,
    }


COLUMNS = [
    ("T", "S=T"),
    ("tgt_fill", "fill"),
    ("jax_s", "jax s"),
    ("torch_s", "torch s"),
    ("jax_tokens_per_s", "jax tok/s"),
    ("torch_tokens_per_s", "torch tok/s"),
    ("speedup", "jax/torch"),
    ("speedup_q25", "q25"),
    ("speedup_q75", "q75"),
    ("peak_gflops", "peak GF/s"),
    ("analytic_gflop", "GFLOP"),
    ("xla_gflop", "XLA GFLOP"),
    ("mfu", "MFU"),
    ("xla_mfu", "XLA MFU"),
    ("torch_mfu", "torch MFU"),
    ("loss_diff", "|dloss|"),
    ("met", "met"),
]


def headline(rows: list[dict]) -> list[dict]:
    """The rows of the docs/performance.md table (``benchmarks/summary.py``): a pair per bucket."""
    out = []
    for row in rows:
        shape = f"g2p.py:at, B={row['B']}, S=T={row['S']}"
        speedup = row["speedup"]
        out.append(
            {
                "name": f"training tokens/s, JAX / PyTorch, {shape}",
                "value": speedup,
                "target": f">= {TARGET_SPEEDUP}",
                "met": speedup >= TARGET_SPEEDUP,
                "unit": "x",
            }
        )
        out.append(
            {
                "name": f"training MFU of a 2048^2 fp32 matmul peak, {shape}",
                "value": 100 * row["mfu"],
                "target": f">= {TARGET_MFU:.0%}",
                "met": row["mfu"] >= TARGET_MFU,
                "unit": "%",
            }
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its section; returns the section."""
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--buckets", type=common.int_list, default=None, help="S = T lengths")
    parser.add_argument("--variant", default="at", help="g2p.py variant (at; at,quick: tiny)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    args = parser.parse_args(argv)
    buckets = args.buckets or ([12] if args.quick else [8, 12, 16])
    repeats = args.repeats or (3 if args.quick else 8)
    min_seconds = args.min_seconds if args.min_seconds >= 0 else (4.0 if args.quick else 20.0)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    config = common.g2p_config(args.variant)
    if config.model.name != "seq2seq":
        raise SystemExit(f"--variant {args.variant!r} is not an AT model; valid: at, at,quick")

    rows = []
    for length in buckets:
        rows.append(measure_bucket(config, length, repeats, min_seconds))
        row = rows[-1]
        print(f"S=T={length}: jax/torch {row['speedup']:.2f}x, MFU {row['mfu']:.1%}", flush=True)

    section = {
        "description": "tokens/s of the g2p.py:at train step (JAX, jitted) over a PyTorch "
        "nn.Transformer reference of the same model and optimizer, CPU, fp32; tokens = "
        "non-PAD targets; MFU = analytic matmul FLOPs / step time / jitted 2048^3 fp32 "
        "jnp.dot FLOP/s, each a median of interleaved per-repetition ratios",
        "command": common.command_line(__file__, argv),
        "quick": args.quick,
        "variant": args.variant,
        "machine": {
            **common.machine_info(),
            "torch": torch.__version__,
            "torch_threads": threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        },
        "targets": {
            "speedup": f"jax/torch tokens/s >= {TARGET_SPEEDUP} in every bucket",
            "mfu": f"MFU >= {TARGET_MFU:.0%} in every bucket",
        },
        "speedup_met": all(row["speedup"] >= TARGET_SPEEDUP for row in rows),
        "mfu_met": all(row["mfu"] >= TARGET_MFU for row in rows),
        "rows": rows,
    }
    section["met"] = section["speedup_met"] and section["mfu_met"]
    section["headline"] = headline(rows)
    print(common.format_table(rows, COLUMNS))
    for name in ("speedup", "mfu"):
        verdict = "met" if section[f"{name}_met"] else "MISSED"
        print(f"target {section['targets'][name]}: {verdict}")
    common.write_section(SECTION, section, args.results)
    return section


if __name__ == "__main__":
    main()
