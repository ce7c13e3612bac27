r"""Long sequences: ``chunked_attention`` against dense softmax attention, time and memory.

    python benchmarks/long_sequences.py            # T = 1k, 4k, 16k; 2-3 min on 2 cores
    python benchmarks/long_sequences.py --quick    # fewer repetitions; 16k memory only, not timed

Issue 8, benchmark 2. Forward plus backward (the gradient w.r.t. q, k, v of
``sum(attention(q, k, v) * ct)``), jitted, fp32, [B, T, H, D] = [1, T, 8, 64], chunks of
128 queries x 128 keys (the ``chunked_attention`` defaults).

Memory is XLA's memory analysis of the compiled executables: ``temp`` is the attention's
memory overhead (scores, weights, their gradients, saved residuals), the quantity Rabe &
Staats 2021 report; arguments and outputs (q, k, v, ct and the three gradients) are the same
for both. It needs no run, so dense attention is measured at 16k too, where its fwd+bwd needs
about 24 GiB of scratch and does not fit this machine: dense is timed only where its peak is
under half of the memory available at start. Rabe & Staats report, at 16k, 59x less memory
overhead for inference and 32x for differentiation.

Targets: at 16k at least 20x less fwd+bwd attention memory than dense; at 4k at most 1.3x
dense time. The figures go into the ``long_sequences`` section of ``benchmarks/results.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import functools  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from attnlab.ops.attention import chunked_attention, dot_product_attention  # noqa: E402
from benchmarks import common  # noqa: E402

SECTION = "long_sequences"
MEMORY_TARGET = 20.0  # dense temp / chunked temp, fwd+bwd, at --memory_target_T
TIME_TARGET = 1.3  # chunked time / dense time, fwd+bwd, at --time_target_T
RABE_STAATS_16K = {"inference": 59.0, "differentiation": 32.0}
ALONE_REPEATS = 2  # timed calls of chunked attention at lengths where dense does not fit


def dense(query: jax.Array, key: jax.Array, value: jax.Array) -> jax.Array:
    return dot_product_attention(query, key, value, scores="softmax")


def compile_both(shape: tuple[int, ...], chunked) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dense and chunked fwd+bwd compiled for ``shape`` (not run), and the memory figures.

    The memory row holds XLA's temp (attention overhead) and peak of fwd+bwd, the temp of the
    forward pass alone, and the dense / chunked ratios of each.
    """
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    compiled, row = {}, {}
    for name, attention in (("dense", dense), ("chunked", chunked)):
        compiled[name], train = common.compile_with_memory(
            common.fwd_bwd(attention), spec, spec, spec, spec
        )
        _, infer = common.compile_with_memory(common.forward(attention), spec, spec, spec)
        row[f"{name}_temp_mib"] = common.mib(train["temp_bytes"])
        row[f"{name}_peak_mib"] = common.mib(train["peak_bytes"])
        row[f"{name}_fwd_temp_mib"] = common.mib(infer["temp_bytes"])
    row["memory_ratio"] = row["dense_temp_mib"] / row["chunked_temp_mib"]
    row["fwd_memory_ratio"] = row["dense_fwd_temp_mib"] / row["chunked_fwd_temp_mib"]
    row["peak_ratio"] = row["dense_peak_mib"] / row["chunked_peak_mib"]
    return compiled, row


def measure_length(
    length: int,
    heads: int,
    head_dim: int,
    chunk: tuple[int, int],
    repeats: int,
    min_seconds: float,
    timed: bool,
) -> dict[str, Any]:
    """One row at [1, length, heads, head_dim]: memory always, times when ``timed``."""
    shape = (1, length, heads, head_dim)
    chunked = functools.partial(chunked_attention, query_chunk=chunk[0], key_chunk=chunk[1])
    row: dict[str, Any] = {"T": length, "B": 1, "H": heads, "D": head_dim}
    grads, memory = compile_both(shape, chunked)
    row.update(memory)
    budget_mib = common.mib(common.available_memory_bytes()) / 2
    row["dense_fits"] = row["dense_peak_mib"] <= budget_mib
    row.update(dense_s=None, chunked_s=None, time_ratio=None, time_ratio_q25=None)
    row.update(time_ratio_q75=None, max_grad_diff=None, repeats=0)
    if not timed:
        return row
    alone = not row["dense_fits"]  # chunked timed on its own: a few calls, no ratio
    if alone:
        del grads["dense"]

    args = common.random_arrays(0, shape, 4)
    results = {name: fn(*args) for name, fn in grads.items()}  # also the warm-up call
    if not alone:
        row["max_grad_diff"] = max(
            float(np.max(np.abs(a - b))) for a, b in zip(results["chunked"], results["dense"])
        )
    del results
    times = common.interleaved_times(
        {name: (lambda fn=fn: fn(*args)) for name, fn in grads.items()},
        min(repeats, ALONE_REPEATS) if alone else repeats,
        warmup=0,
        min_seconds=0.0 if alone else min_seconds,
    )
    row["repeats"] = len(times["chunked"])
    row["chunked_s"] = float(np.median(times["chunked"]))
    if not alone:
        row["dense_s"] = float(np.median(times["dense"]))
        ratio = common.paired_ratio(times["chunked"], times["dense"])
        row.update(
            time_ratio=ratio["median"], time_ratio_q25=ratio["q25"], time_ratio_q75=ratio["q75"]
        )
    return row


def targets(rows: list[dict[str, Any]], memory_length: int, time_length: int) -> dict[str, Any]:
    """The two targets of the issue, each with its figure (``met`` None when not measured)."""
    by_length = {row["T"]: row for row in rows}
    memory = by_length.get(memory_length, {}).get("memory_ratio")
    time = by_length.get(time_length, {}).get("time_ratio")
    return {
        "memory": {
            "target": f"dense/chunked fwd+bwd temp >= {MEMORY_TARGET} at T={memory_length}",
            "figure": memory,
            "met": None if memory is None else memory >= MEMORY_TARGET,
        },
        "time": {
            "target": f"chunked/dense fwd+bwd time <= {TIME_TARGET} at T={time_length}",
            "figure": time,
            "met": None if time is None else time <= TIME_TARGET,
        },
    }


def headline(targets: dict[str, Any], memory_length: int, time_length: int) -> list[dict[str, Any]]:
    """The two targets as the entries that benchmarks/summary.py renders into
    docs/performance.md."""
    memory, time = targets["memory"], targets["time"]
    return [
        {
            "name": f"long sequences fwd+bwd memory, dense / chunked, T={memory_length}",
            "value": memory["figure"],
            "unit": "x",
            "target": f">= {MEMORY_TARGET:g}x",
            "met": memory["met"],
        },
        {
            "name": f"long sequences fwd+bwd time, chunked / dense, T={time_length}",
            "value": time["figure"],
            "target": f"<= {TIME_TARGET:g}",
            "met": time["met"],
        },
    ]


COLUMNS = [
    ("T", "T"),
    ("dense_s", "dense s"),
    ("chunked_s", "chunked s"),
    ("time_ratio", "chunk/dense"),
    ("dense_temp_mib", "dense MiB"),
    ("chunked_temp_mib", "chunk MiB"),
    ("memory_ratio", "mem x less"),
    ("fwd_memory_ratio", "fwd mem x"),
    ("peak_ratio", "peak x"),
    ("dense_fits", "dense run"),
    ("max_grad_diff", "max |dgrad|"),
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its section; returns the section."""
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=common.int_list, default=[1024, 4096, 16384])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head_dim", type=int, default=64)
    parser.add_argument("--query_chunk", type=int, default=128)
    parser.add_argument("--key_chunk", type=int, default=128)
    parser.add_argument("--max_timed_T", type=int, default=0, help="0: time every length")
    parser.add_argument("--memory_target_T", type=int, default=16384)
    parser.add_argument("--time_target_T", type=int, default=4096)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    min_seconds = args.min_seconds if args.min_seconds >= 0 else (2.0 if args.quick else 6.0)
    max_timed = args.max_timed_T or (4096 if args.quick else max(args.lengths))
    chunk = (args.query_chunk, args.key_chunk)

    rows = []
    for length in args.lengths:
        timed = length <= max_timed
        rows.append(
            measure_length(length, args.heads, args.head_dim, chunk, repeats, min_seconds, timed)
        )
        print(f"T={length}: memory {rows[-1]['memory_ratio']:.1f}x less", flush=True)

    section = {
        "description": "chunked_attention (online softmax) against dense softmax attention, "
        "fwd+bwd, fp32; memory from XLA's compiled memory analysis (temp = attention overhead)",
        "command": common.command_line(__file__, argv),
        "quick": args.quick,
        "machine": common.machine_info(),
        "query_chunk": chunk[0],
        "key_chunk": chunk[1],
        "rabe_staats_16k_memory_ratio": RABE_STAATS_16K,
        "targets": targets(rows, args.memory_target_T, args.time_target_T),
        "rows": rows,
    }
    section["headline"] = headline(section["targets"], args.memory_target_T, args.time_target_T)
    print(common.format_table(rows, COLUMNS))
    for name, target in section["targets"].items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        print(f"{name}: {target['target']}: {target['figure']}: {verdict}")
    print(f"Rabe & Staats 2021 at 16k: {RABE_STAATS_16K}")
    common.write_section(SECTION, section, args.results)
    return section


if __name__ == "__main__":
    main()
