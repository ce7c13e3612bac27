r"""Throughput of the G2P input pipeline, against the rate at which a train step consumes it.

    python benchmarks/pipeline.py                       # batch 64, full cmudict_g2p
    python benchmarks/pipeline.py --batch_size=128 --train_steps=0

Measures, on this machine:
1. the time to build ``cmudict_g2p`` and its vocabularies (0 when already built);
2. training batches per second of ``make_train_iterator`` (shuffled, tokenized, padded to
   fixed shapes) after one warm-up batch, over ``--num_batches`` batches, in wall-clock time
   and per CPU-second of this process (the figure to trust on a shared, loaded machine);
3. when ``attnlab.train`` provides its step, train steps per second of the ``g2p.py:at``
   model on those batches (after compilation), and the ratio of the two rates. The target is
   a pipeline at least 5x faster than the step, so input never limits training.

Prints one line per figure and, with ``--json_out``, writes them as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from absl import app, flags, logging

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from attnlab.data import dataset_info, make_train_iterator  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "data_dir", "", "TFDS data dir ('' = $ATTNLAB_DATA_DIR or ~/.cache/attnlab/tfds)"
)
flags.DEFINE_integer("batch_size", 64, "training batch size")
flags.DEFINE_integer("num_batches", 500, "batches timed for the pipeline")
flags.DEFINE_integer("train_steps", 20, "train steps timed after compilation (0: skip)")
flags.DEFINE_integer("seed", 0, "shuffle seed")
flags.DEFINE_string("json_out", "", "write the figures here as JSON")


def pipeline_rate(data_cfg: dict, batch_size: int, num_batches: int, seed: int) -> dict:
    iterator = make_train_iterator(data_cfg, batch_size=batch_size, seed=seed)
    start = time.perf_counter()
    next(iterator)
    first = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    tokens = 0
    for _ in range(num_batches):
        batch = next(iterator)
        tokens += int((batch["inputs"] != 0).sum() + (batch["targets"] != 0).sum())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "first_batch_s": first,
        "pipeline_batches_per_s": num_batches / elapsed,
        "pipeline_tokens_per_s": tokens / elapsed,
        # per CPU-second of this process: what the rate would be on an idle core
        "pipeline_batches_per_cpu_s": num_batches / cpu,
    }


def _load_g2p_config():
    path = ROOT / "experiments" / "configs" / "g2p.py"
    spec = importlib.util.spec_from_file_location("g2p_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config("at")


def train_step_rate(data_cfg: dict, batch_size: int, steps: int, seed: int) -> dict:
    """Steps/s of the ``g2p.py:at`` train step, or the reason it could not be measured."""
    try:
        import jax

        from attnlab.train.resolve import build, resolve_config
        from attnlab.train.steps import init_state, make_train_step

        config = _load_g2p_config()
    except (ImportError, AttributeError, FileNotFoundError) as error:
        return {"train_step": f"not available: {error}"}
    config.data.update(data_cfg)
    config.batch_size = batch_size
    config, _ = resolve_config(config)
    model, optimizer = build(config)
    graphdef, state = init_state(model, optimizer)
    step_fn = make_train_step(graphdef, optimizer, config)
    iterator = make_train_iterator(config.data, batch_size=batch_size, seed=seed)
    batches = [next(iterator) for _ in range(steps + 1)]
    start = time.perf_counter()
    state, metrics = step_fn(state, batches[0], jax.numpy.asarray(1))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for i, batch in enumerate(batches[1:], start=2):
        state, metrics = step_fn(state, batch, jax.numpy.asarray(i))
    jax.block_until_ready(metrics)
    elapsed = time.perf_counter() - start
    return {
        "train_step_model": "g2p.py:at",
        "train_compile_s": compile_s,
        "train_steps_per_s": steps / elapsed,
        "device": str(jax.devices()[0]),
    }


def main(argv):
    del argv
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    data_cfg = {"name": "cmudict_g2p", "data_dir": FLAGS.data_dir}
    start = time.perf_counter()
    info = dataset_info(data_cfg)
    figures = {
        "dataset": "cmudict_g2p",
        "batch_size": FLAGS.batch_size,
        "prepare_s": time.perf_counter() - start,
        "split_sizes": info.split_sizes,
        "src_vocab": len(info.src_vocab),
        "tgt_vocab": len(info.tgt_vocab),
        "cpu_count": os.cpu_count(),
    }
    figures.update(pipeline_rate(data_cfg, FLAGS.batch_size, FLAGS.num_batches, FLAGS.seed))
    if FLAGS.train_steps > 0:
        figures.update(train_step_rate(data_cfg, FLAGS.batch_size, FLAGS.train_steps, FLAGS.seed))
    if "train_steps_per_s" in figures:
        ratio = figures["pipeline_batches_per_s"] / figures["train_steps_per_s"]
        figures["pipeline_over_train"] = ratio
        figures["meets_5x_target"] = ratio >= 5.0
    for key, value in figures.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")
    if FLAGS.json_out:
        Path(FLAGS.json_out).write_text(json.dumps(figures, indent=2) + "\n")
    logging.info("done")


if __name__ == "__main__":
    app.run(main)
