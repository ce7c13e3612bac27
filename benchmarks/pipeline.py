r"""Input pipeline: G2P training batches per second against the train step that consumes them.

    python benchmarks/pipeline.py            # 7 blocks of 200 batches / 4 steps; ~2 min on 2 cores
    python benchmarks/pipeline.py --quick    # 3 blocks of 50 batches / 2 steps

Issue 8, benchmark 5. The pipeline is ``attnlab.data.make_train_iterator`` on the data config
of ``experiments/configs/g2p.py:at`` (cmudict_g2p, length buckets, batch 128): shuffled,
tokenized, padded to the bucket's shape. The consumer is that config's jitted train step, fed
as the training loop feeds it (``shard_batch`` then the step), on batches drawn beforehand
from the same pipeline, after one compilation per bucket shape.

The two run side by side in one process: each block is ``--block_batches`` pipeline batches
and ``--block_steps`` train steps, the order alternating from block to block (as in
``common.interleaved_times``). The figure is the median over blocks of the per-block ratio of
rates, pipeline batches/s over train steps/s. Target: at least 5x, so input never limits
training. On a shared machine the wall-clock rate of the pipeline depends on the load; its
batches per CPU-second of this process (during the pipeline blocks) is what it would reach on
an idle core. Also recorded: the time to build the dataset and vocabularies (about 0 when
already built), the split and vocabulary sizes. The figures go into the ``pipeline`` section
of ``benchmarks/results.json``.
"""

from __future__ import annotations

import collections
import itertools
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from attnlab.data import dataset_info, make_train_iterator  # noqa: E402
from attnlab.train.config import load_config_file  # noqa: E402
from attnlab.train.resolve import create_train_state, resolve_config  # noqa: E402
from attnlab.train.sharding import make_mesh, replicated, shard_batch  # noqa: E402
from attnlab.train.steps import make_train_step  # noqa: E402
from benchmarks import common  # noqa: E402

SECTION = "pipeline"
TARGET_RATIO = 5.0  # pipeline batches/s over train steps/s
CONFIG = "experiments/configs/g2p.py:at"


def load_config(spec: str):
    """``path.py:arg`` (relative to the repository) -> ``get_config(arg)`` of that file."""
    try:
        return load_config_file(spec if Path(spec).is_absolute() else ROOT / spec)
    except ValueError as err:
        raise SystemExit(f"--config: {err}") from None


class Consumer:
    """The train step of a resolved config, fed from a pool of pipeline batches in turn."""

    def __init__(self, config, pool: list[dict[str, Any]]) -> None:
        self.mesh = make_mesh()
        self.graphdef, self.state, optimizer = create_train_state(config, replicated(self.mesh))
        self.step_fn = make_train_step(
            self.graphdef, optimizer, config, state_sharding=replicated(self.mesh)
        )
        self.pool, self.batches, self.step = pool, itertools.cycle(pool), 0

    def _take(self, batch: dict[str, Any]) -> dict[str, jax.Array]:
        self.step += 1
        self.state, metrics = self.step_fn(
            self.state, shard_batch(batch, self.mesh), jax.numpy.asarray(self.step, jax.numpy.int32)
        )
        return metrics

    def compile(self) -> tuple[float, int]:
        """One step on a batch of each bucket shape in the pool: (seconds, shapes)."""
        shapes = {}
        for batch in self.pool:
            shapes.setdefault(tuple(value.shape for value in batch.values()), batch)
        start = time.perf_counter()
        for batch in shapes.values():
            jax.block_until_ready(self._take(batch))
        return time.perf_counter() - start, len(shapes)

    def run(self, steps: int) -> None:
        metrics = None
        for _ in range(steps):
            metrics = self._take(next(self.batches))
        jax.block_until_ready(metrics)


def measure(config, args, repeats: int, min_seconds: float) -> dict[str, Any]:
    """Prepare, then the interleaved blocks; returns the section's figures."""
    start = time.perf_counter()
    info = dataset_info(config.data)
    prepare_s = time.perf_counter() - start
    config, _ = resolve_config(config)
    batch_size = int(config.batch_size)

    iterator = make_train_iterator(config.data, batch_size=batch_size, seed=args.seed)
    start = time.perf_counter()
    next(iterator)
    first_batch_s = time.perf_counter() - start

    pool_iterator = make_train_iterator(config.data, batch_size=batch_size, seed=args.seed + 1)
    pool = [next(pool_iterator) for _ in range(max(args.pool, args.block_steps))]
    consumer = Consumer(config, pool)
    compile_s, num_shapes = consumer.compile()

    cpu_seconds: list[float] = []

    def pipeline_block() -> None:
        cpu = time.process_time()
        for _ in range(args.block_batches):
            next(iterator)
        cpu_seconds.append(time.process_time() - cpu)

    times = common.interleaved_times(
        {"pipeline": pipeline_block, "train": lambda: consumer.run(args.block_steps)},
        repeats,
        warmup=0,  # the first batch and compilation are done and timed above
        min_seconds=min_seconds,
    )
    # rate ratio of a block: (batches / t_pipeline) / (steps / t_train)
    scale = args.block_batches / args.block_steps
    ratio = {
        k: v * scale for k, v in common.paired_ratio(times["train"], times["pipeline"]).items()
    }
    pipeline_s, train_s = float(np.median(times["pipeline"])), float(np.median(times["train"]))
    pool_lengths = collections.Counter(int(b["inputs"].shape[1]) for b in pool)
    return {
        "config": args.config,
        "dataset": info.name,
        "batch_size": batch_size,
        "bucket_boundaries": list(config.data.bucket_boundaries),
        "prepare_s": prepare_s,
        "split_sizes": dict(info.split_sizes),
        "src_vocab": len(info.src_vocab),
        "tgt_vocab": len(info.tgt_vocab),
        "first_batch_s": first_batch_s,
        "train_compile_s": compile_s,
        "train_compiled_shapes": num_shapes,
        "train_pool_input_lengths": {str(k): v for k, v in sorted(pool_lengths.items())},
        "block_batches": args.block_batches,
        "block_steps": args.block_steps,
        "blocks": len(times["pipeline"]),
        "pipeline_batches_per_s": args.block_batches / pipeline_s,
        "pipeline_batches_per_cpu_s": args.block_batches * len(cpu_seconds) / sum(cpu_seconds),
        "train_steps_per_s": args.block_steps / train_s,
        "ratio": ratio["median"],
        "ratio_q25": ratio["q25"],
        "ratio_q75": ratio["q75"],
        "met": ratio["median"] >= TARGET_RATIO,
    }


COLUMNS = [
    ("batch_size", "batch"),
    ("blocks", "blocks"),
    ("pipeline_batches_per_s", "pipe batch/s"),
    ("pipeline_batches_per_cpu_s", "pipe batch/cpu-s"),
    ("train_steps_per_s", "train step/s"),
    ("ratio", "pipe/train"),
    ("ratio_q25", "q25"),
    ("ratio_q75", "q75"),
    ("met", f">= {TARGET_RATIO:g}"),
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its section; returns the section."""
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG, help="the train config, path.py:variant")
    parser.add_argument("--data_dir", default="", help="'' = the config's, else this")
    parser.add_argument("--batch_size", type=int, default=0, help="0: the config's (128)")
    parser.add_argument("--block_batches", type=int, default=0, help="0: 200 (--quick: 50)")
    parser.add_argument("--block_steps", type=int, default=0, help="0: 4 (--quick: 2)")
    parser.add_argument("--pool", type=int, default=32, help="train batches drawn beforehand")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed of the pipeline")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    min_seconds = args.min_seconds if args.min_seconds >= 0 else 0.0
    args.block_batches = args.block_batches or (50 if args.quick else 200)
    args.block_steps = args.block_steps or (2 if args.quick else 4)
    for name in ("block_batches", "block_steps", "pool"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1; got {getattr(args, name)}")

    config = load_config(args.config)
    if args.data_dir:
        config.data.data_dir = args.data_dir
    if args.batch_size:
        config.batch_size = args.batch_size
    row = measure(config, args, repeats, min_seconds)

    config_name = Path(args.config).name
    headline_name = f"pipeline / train step rate ({config_name}, batch {row['batch_size']})"
    section = {
        "description": "batches/s of make_train_iterator over steps/s of the train step that "
        "consumes them (same config, same process, interleaved blocks)",
        "command": common.command_line(__file__, argv),
        "quick": args.quick,
        "machine": common.machine_info(),
        "target": f"ratio >= {TARGET_RATIO:g}",
        "met": row["met"],
        "headline": [
            {
                "name": headline_name,
                "value": row["ratio"],
                "target": f">= {TARGET_RATIO:g}x",
                "met": row["met"],
                "unit": "x",
            },
        ],
        **row,
    }
    print(
        f"{row['dataset']}: prepare {row['prepare_s']:.2f} s, splits {row['split_sizes']}, "
        f"vocab {row['src_vocab']} -> {row['tgt_vocab']}"
    )
    print(
        f"first batch {row['first_batch_s']:.3f} s; train step compiled for "
        f"{row['train_compiled_shapes']} shapes in {row['train_compile_s']:.1f} s"
    )
    print(common.format_table([row], COLUMNS))
    print(f"target {section['target']}: {'met' if section['met'] else 'MISSED'}")
    common.write_section(SECTION, section, args.results)
    return section


if __name__ == "__main__":
    main()
