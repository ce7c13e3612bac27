r"""Attention op: our softmax ``dot_product_attention`` against ``jax.nn.dot_product_attention``.

    python benchmarks/attention.py            # T = 128, 512, 2048; 1.5-2 min on 2 cores
    python benchmarks/attention.py --quick    # >= 3 repetitions and 2 s per T (not 9 and 6 s)

Issue 8, benchmark 1. Both contenders run forward plus backward, jitted: the gradient with
respect to q, k, v of ``sum(attention(q, k, v) * ct)`` for a random cotangent ``ct``. Shapes
are [B, T, H, D] with H = 8, D = 64 and B = 4096 // T (4096 tokens per batch at every
length). Target: time ratio ours / jax at most 1.05 at each length.

Besides the time ratio (median over interleaved repetitions of the per-repetition ratio, with
its quartiles) each row carries:
- ``fwd_ratio``: the same for the forward pass alone, to tell where a difference comes from
  (a diagnostic, not a target: at small T XLA:CPU fuses our whole forward into one YNNPACK
  fusion, which is slower there than jax's two);
- ``temp_mib`` of both compiled fwd+bwd executables (XLA memory analysis);
- ``max_grad_diff``: the largest |difference| between the two gradients, a check that both
  compute the same thing.
The figures go into the ``attention`` section of ``benchmarks/results.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from attnlab.ops.attention import dot_product_attention  # noqa: E402
from benchmarks import common  # noqa: E402

SECTION = "attention"
TARGET_RATIO = 1.05


def ours(query: jax.Array, key: jax.Array, value: jax.Array) -> jax.Array:
    return dot_product_attention(query, key, value, scores="softmax")


def reference(query: jax.Array, key: jax.Array, value: jax.Array) -> jax.Array:
    return jax.nn.dot_product_attention(query, key, value)


def measure_length(
    length: int,
    batch: int,
    heads: int,
    head_dim: int,
    repeats: int,
    min_seconds: float,
    seed: int = 0,
) -> dict[str, Any]:
    """One row: ours against jax at ``[batch, length, heads, head_dim]``."""
    query, key, value, cotangent = common.random_arrays(seed, (batch, length, heads, head_dim), 4)
    grads, memory = {}, {}
    for name, attention in (("ours", ours), ("jax", reference)):
        grads[name], memory[name] = common.compile_with_memory(
            common.fwd_bwd(attention), query, key, value, cotangent
        )
    fwds = {"ours": common.forward(ours), "jax": common.forward(reference)}

    got = grads["ours"](query, key, value, cotangent)
    want = grads["jax"](query, key, value, cotangent)
    max_grad_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(got, want))
    del got, want

    times = common.interleaved_times(
        {name: (lambda fn=fn: fn(query, key, value, cotangent)) for name, fn in grads.items()},
        repeats,
        warmup=0,  # the gradient check above compiled and ran both
        min_seconds=min_seconds,
    )
    fwd_times = common.interleaved_times(
        {name: (lambda fn=fn: fn(query, key, value)) for name, fn in fwds.items()},
        repeats,
        min_seconds=min_seconds,
    )
    ratio = common.paired_ratio(times["ours"], times["jax"])
    return {
        "T": length,
        "B": batch,
        "H": heads,
        "D": head_dim,
        "ours_s": float(np.median(times["ours"])),
        "jax_s": float(np.median(times["jax"])),
        "ratio": ratio["median"],
        "ratio_q25": ratio["q25"],
        "ratio_q75": ratio["q75"],
        "fwd_ratio": common.paired_ratio(fwd_times["ours"], fwd_times["jax"])["median"],
        "ours_temp_mib": common.mib(memory["ours"]["temp_bytes"]),
        "jax_temp_mib": common.mib(memory["jax"]["temp_bytes"]),
        "max_grad_diff": max_grad_diff,
        "repeats": len(times["ours"]),
        "met": ratio["median"] <= TARGET_RATIO,
    }


COLUMNS = [
    ("T", "T"),
    ("B", "B"),
    ("ours_s", "ours s"),
    ("jax_s", "jax s"),
    ("ratio", "ours/jax"),
    ("ratio_q25", "q25"),
    ("ratio_q75", "q75"),
    ("fwd_ratio", "fwd only"),
    ("ours_temp_mib", "ours MiB"),
    ("jax_temp_mib", "jax MiB"),
    ("max_grad_diff", "max |dgrad|"),
    ("met", f"<= {TARGET_RATIO}"),
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its section; returns the section."""
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=common.int_list, default=[128, 512, 2048])
    parser.add_argument("--tokens", type=int, default=4096, help="B * T at every length")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head_dim", type=int, default=64)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 9)
    min_seconds = args.min_seconds if args.min_seconds >= 0 else (2.0 if args.quick else 6.0)

    rows = []
    for length in args.lengths:
        batch = max(1, args.tokens // length)
        rows.append(measure_length(length, batch, args.heads, args.head_dim, repeats, min_seconds))
        print(f"T={length}: ours/jax = {rows[-1]['ratio']:.3f}", flush=True)

    section = {
        "description": "fwd+bwd time of attnlab softmax dot_product_attention over "
        "jax.nn.dot_product_attention (grad of sum(out * ct) w.r.t. q, k, v, jitted, fp32)",
        "command": common.command_line(__file__, argv),
        "quick": args.quick,
        "machine": common.machine_info(),
        "target": f"ratio <= {TARGET_RATIO} at every T",
        "met": all(row["met"] for row in rows),
        "headline": [  # rendered into docs/performance.md by benchmarks/summary.py
            {
                "name": f"attention fwd+bwd time, ours / jax.nn, T={row['T']}",
                "value": row["ratio"],
                "target": f"<= {TARGET_RATIO}",
                "met": row["met"],
            }
            for row in rows
        ],
        "rows": rows,
    }
    print(common.format_table(rows, COLUMNS))
    print(f"target {section['target']}: {'met' if section['met'] else 'MISSED'}")
    common.write_section(SECTION, section, args.results)
    return section


if __name__ == "__main__":
    main()
