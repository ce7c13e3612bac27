r"""Time to quality: this tree against revision ``--rev``, for the G2P AT and the CTC NAT.

    python benchmarks/time_to_quality.py --at_run=runs/ttq/at --ctc_run=runs/ttq/ctc
    python benchmarks/time_to_quality.py --quick      # CI: tiny configs, about a minute

Issue 36, item 3. For each model (``g2p.py:at``, and the ``ctc`` NAT ``g2p.py:nat,ctc``):

    time to quality = steps to reach the threshold x median seconds per step

- **Threshold**: the model's own validation WER at ``REFERENCE_STEPS`` (4,000) steps in the
  reference revision, measured once (seed 0, the revision's config with
  ``--config.num_train_steps=4000``) and written below as ``THRESHOLD_WER``. Without a
  measured threshold the script refuses to write results.
- **Steps** (a count, independent of the machine): the revision needs ``REFERENCE_STEPS`` by
  definition; this tree needs the first evaluated step whose ``eval_wer`` is at or below the
  threshold, read from the ``metrics.jsonl`` of a training run of this tree (``--at_run``,
  ``--ctc_run``: a workdir of ``experiments/train.py`` with the same config and seed).
- **Seconds per step**: both versions' train steps, side by side in this process
  (``against_revision.revision_package`` imports the revision's ``src/attnlab`` as
  ``attnlab_rev`` and its ``experiments/configs`` beside it), each on the first ``--batches``
  real training batches of its own config and pipeline (so a change of batch size or bucket
  boundaries is timed as it trains), interleaved (``common.interleaved_times``), ``--steps``
  steps a call; the median over repetitions. A 2048^3 float32 ``jnp.dot`` runs in the same
  repetitions: ``fraction_of_peak`` = analytic matmul FLOPs of the step
  (``common.analytic_flops``, ``common.nat_flops``) / step time / that peak.
- ``tokens_per_s``: non-PAD source and target tokens per step (the training loop's count),
  averaged over the timed batches, over the seconds per step.
- ``ratio_vs_rev`` = the revision's seconds / ours (larger is better; target 1.5).

``--quick`` (for CI) trains both versions in this process with their own
``train_and_evaluate`` on the tiny ``quick`` variants (a 2000-word build, d_model 32;
``QUICK_STEPS`` steps, evaluated every ``QUICK_EVAL_EVERY``), sets the threshold to the
revision's WER at its last step, counts both versions' steps to it the same way, and times
their steps as above.
Results go into ``benchmarks/results.json`` under ``time_to_quality``.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
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
from benchmarks.against_revision import revision_package  # noqa: E402

import attnlab  # noqa: E402
from attnlab.train import workdir  # noqa: E402
from benchmarks import common  # noqa: E402

SECTION = "time_to_quality"
DEFAULT_REV = "5556763"
MODELS = {"at": "at", "ctc": "nat,ctc"}  # name -> g2p.py variant
REFERENCE_STEPS = 4000
# Validation WER at REFERENCE_STEPS of each model at revision 5556763 (seed 0), from
# runs/ttq_ref/{at,ctc}/metrics.jsonl of the lead's reference runs. Entered only once
# measured: a model missing here stops the full benchmark before it writes anything.
THRESHOLD_WER: dict[str, float] = {
    # benchmarks/time_to_quality_reference/at_5556763.metrics.jsonl, step 4000
    "at": 0.376953125,
    # benchmarks/time_to_quality_reference/ctc_5556763.metrics.jsonl, step 4000
    "ctc": 0.3603515625,
}
TARGET_RATIO = 1.5
TARGET_FRACTION = 0.50
PEAK_SIZE = 2048
QUICK_STEPS = 20  # of the quick variants' 40, to keep CI short
QUICK_EVAL_EVERY = 10


# --- steps to the threshold -----------------------------------------------------------------
def eval_curve(workdir: str | Path) -> list[tuple[int, float]]:
    """(step, eval_wer) of every evaluation in ``workdir/metrics.jsonl``, by step."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"no metrics.jsonl in {workdir}; give the workdir of a training run")
    curve = {}
    for line in path.read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if "eval_wer" in record:
            curve[int(record["step"])] = float(record["eval_wer"])
    return sorted(curve.items())


def steps_to(curve: list[tuple[int, float]], threshold: float) -> int | None:
    """The first evaluated step whose WER is at or below ``threshold`` (None: never)."""
    return next((step for step, wer in curve if wer <= threshold), None)


def check_trained_config(run_dir: Path, variant: str) -> None:
    """Refuse a run that did not train this tree's ``g2p.py:<variant>``: its steps would not
    be this tree's steps. Keys a run may change on resume (the step count, how often it
    evaluates, logs and saves) may differ."""
    saved = workdir.saved_config(run_dir)
    if saved is None:
        raise SystemExit(f"no config.json in {run_dir}; give the workdir of a training run")
    config = load_config(attnlab, variant, ROOT / "experiments" / "configs")
    changes = workdir.config_changes(saved, config)
    if changes:
        raise SystemExit(
            f"{run_dir} did not train this tree's g2p.py:{variant}: {'; '.join(changes)}"
        )


# --- one version's train step ---------------------------------------------------------------
def load_config(package: Any, variant: str, configs_dir: Path, **overrides: Any):
    """``package``'s ``g2p.py:<variant>`` (its own config file), resolved by ``package``."""
    config_mod = importlib.import_module(f"{package.__name__}.train.config")
    resolve = importlib.import_module(f"{package.__name__}.train.resolve")
    config = config_mod.load_config_file(f"{configs_dir / 'g2p.py'}:{variant}")
    config.update(overrides)
    return resolve.resolve_config(config)[0]


class Version:
    """One version's compiled train step on its own real batches, state carried (donated)."""

    def __init__(self, package: Any, config: ml_collections.ConfigDict, batches: int) -> None:
        resolve = importlib.import_module(f"{package.__name__}.train.resolve")
        steps = importlib.import_module(f"{package.__name__}.train.steps")
        data = importlib.import_module(f"{package.__name__}.data")
        self.config = config
        graphdef, self.state, optimizer = resolve.create_train_state(config)
        self.step_fn = steps.make_train_step(graphdef, optimizer, config)
        iterator = data.make_train_iterator(
            config.data, batch_size=config.batch_size, seed=config.seed
        )
        host = [next(iterator) for _ in range(batches)]
        self.batches = [
            {k: jnp.asarray(v) for k, v in b.items() if isinstance(v, np.ndarray)} for b in host
        ]
        self.tokens = float(
            np.mean([np.count_nonzero(b["inputs"]) + np.count_nonzero(b["targets"]) for b in host])
        )
        self.flops = float(np.mean([self._flops(b) for b in host]))
        self.count = 0

    def _flops(self, batch: dict[str, np.ndarray]) -> float:
        cfg, rows = self.config.model, self.config.batch_size
        src, tgt = batch["inputs"].shape[1], batch["targets"].shape[1]
        if cfg.name == "seq2seq":
            return float(common.analytic_flops(cfg, rows, src, tgt)[0])
        return common.nat_flops(cfg, rows, src)

    def run(self, steps: int) -> Any:
        for _ in range(steps):
            batch = self.batches[self.count % len(self.batches)]
            self.count += 1
            self.state, metrics = self.step_fn(self.state, batch, jnp.asarray(self.count))
        return metrics


def time_steps(versions: dict[str, Version], steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per step of each version and per 2048^3 matmul, interleaved."""
    a, b = common.random_arrays(0, (PEAK_SIZE, PEAK_SIZE), 2)
    matmul = jax.jit(jnp.dot)
    contenders = {name: (lambda v=v: v.run(steps)) for name, v in versions.items()}
    contenders["matmul"] = lambda: matmul(a, b)
    times = common.interleaved_times(contenders, repeats, warmup=1)
    return {k: [t / (steps if k != "matmul" else 1) for t in v] for k, v in times.items()}


# --- quick: train both in-process -----------------------------------------------------------
def quick_curves(rev: Any, variant: str, workdir: Path) -> tuple[list, list]:
    """Eval curves of this tree and the revision on ``g2p.py:<variant>,quick``."""
    curves = []
    for package, configs in ((attnlab, ROOT / "experiments" / "configs"), (rev, rev.configs_dir)):
        config_mod = importlib.import_module(f"{package.__name__}.train.config")
        loop = importlib.import_module(f"{package.__name__}.train.loop")
        config = config_mod.load_config_file(f"{configs / 'g2p.py'}:{variant},quick")
        config.update(
            num_train_steps=QUICK_STEPS,
            eval_every_steps=QUICK_EVAL_EVERY,
            checkpoint_every_steps=QUICK_STEPS,
        )
        run_dir = workdir / f"{package.__name__}_{variant.replace(',', '_')}"
        loop.train_and_evaluate(config, run_dir)
        curves.append(eval_curve(run_dir))
    return curves[0], curves[1]


# --- the benchmark --------------------------------------------------------------------------
def measure(args) -> dict[str, Any]:
    models: dict[str, Any] = {}
    thresholds: dict[str, float] = {}
    fraction: dict[str, float] = {}
    suffix = ",quick" if args.quick else ""
    with revision_package(args.rev) as rev, tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            variant = MODELS[name]
            if args.quick:
                ours_curve, rev_curve = quick_curves(rev, variant, Path(tmp))
                thresholds[name] = rev_curve[-1][1]
                rev_steps = steps_to(rev_curve, thresholds[name])
            else:
                thresholds[name] = THRESHOLD_WER[name]
                run_dir = Path(getattr(args, f"{name}_run"))
                check_trained_config(run_dir, variant)
                ours_curve = eval_curve(run_dir)
                rev_steps = REFERENCE_STEPS
            ours_steps = steps_to(ours_curve, thresholds[name])
            if ours_steps is None:
                raise SystemExit(
                    f"{name}: this tree's run never reached WER {thresholds[name]:.4f} "
                    f"(its evaluations: {ours_curve}); train it longer"
                )
            versions = {
                "ours": Version(
                    attnlab,
                    load_config(attnlab, variant + suffix, ROOT / "experiments" / "configs"),
                    args.batches,
                ),
                "rev": Version(
                    rev, load_config(rev, variant + suffix, rev.configs_dir), args.batches
                ),
            }
            times = time_steps(versions, args.steps, args.repeats)
            peak = 2 * PEAK_SIZE**3 / float(np.median(times["matmul"]))
            entry: dict[str, Any] = {}
            for who, steps in (("ours", ours_steps), ("rev", rev_steps)):
                per_step = float(np.median(times[who]))
                entry[who] = {
                    "steps": int(steps),
                    "seconds_per_step": per_step,
                    "seconds": steps * per_step,
                    "tokens_per_s": versions[who].tokens / per_step,
                    "fraction_of_peak": versions[who].flops / per_step / peak,
                }
            step_ratio = common.paired_ratio(times["rev"], times["ours"])
            models[name] = {
                **entry["ours"],
                "ratio_vs_rev": entry["rev"]["seconds"] / entry["ours"]["seconds"],
                "step_time_ratio_vs_rev": step_ratio,
                "threshold_wer": thresholds[name],
                "eval_curve": [[step, wer] for step, wer in ours_curve],
                "rev": entry["rev"],
                "config": f"g2p.py:{variant}{suffix}",
            }
            fraction[name] = entry["ours"]["fraction_of_peak"]
            print(
                f"{name}: {ours_steps} steps x {entry['ours']['seconds_per_step']:.3f} s against "
                f"{rev_steps} x {entry['rev']['seconds_per_step']:.3f} s: "
                f"{models[name]['ratio_vs_rev']:.2f}x",
                flush=True,
            )
    return {
        "models": models,
        "threshold_wer": thresholds,
        "fraction_of_peak": fraction,
        "peak": peak,
    }


def headline(models: dict[str, Any], fraction_at: float | None) -> list[dict[str, Any]]:
    rows = [
        {
            "name": f"time to quality, {name}, revision / this tree",
            "value": m["ratio_vs_rev"],
            "target": f">= {TARGET_RATIO}",
            "met": m["ratio_vs_rev"] >= TARGET_RATIO,
            "unit": "x",
        }
        for name, m in models.items()
    ]
    if fraction_at is not None:
        rows.append(
            {
                "name": "fraction of the 2048^3 fp32 matmul peak, g2p.py:at step",
                "value": 100 * fraction_at,
                "target": f">= {TARGET_FRACTION:.0%}",
                "met": fraction_at >= TARGET_FRACTION,
                "unit": "%",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rev", default=DEFAULT_REV, help="git revision to compare against")
    parser.add_argument("--at_run", default="", help="workdir of this tree's g2p.py:at run")
    parser.add_argument("--ctc_run", default="", help="workdir of this tree's g2p.py:nat,ctc run")
    parser.add_argument("--models", default="at,ctc", help="comma-separated: at, ctc")
    parser.add_argument("--batches", type=int, default=0, help="real batches timed (0: default)")
    parser.add_argument("--steps", type=int, default=0, help="steps per timed call (0: default)")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if not args.models or set(args.models) - set(MODELS):
        parser.error(f"--models {','.join(args.models)!r}; valid: {', '.join(MODELS)}")
    if not args.quick:
        missing = [m for m in args.models if m not in THRESHOLD_WER]
        if missing:
            parser.error(
                f"no measured threshold for {', '.join(missing)}: THRESHOLD_WER holds the "
                f"revision's WER at {REFERENCE_STEPS} steps once measured; until then only "
                "--quick runs"
            )
        runs = [f"--{m}_run" for m in args.models if not getattr(args, f"{m}_run")]
        if runs:
            parser.error(f"{', '.join(runs)} needed: the workdir of this tree's training run")
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.batches = args.batches or (2 if args.quick else 24)
    args.steps = args.steps or (1 if args.quick else 4)
    found = measure(args)
    models = found["models"]
    fraction_at = found["fraction_of_peak"].get("at")
    section = {
        "description": "time to quality = steps to the threshold WER x median seconds per "
        "step, this tree against a revision timed side by side in one process",
        "command": common.command_line(__file__, argv),
        "machine": common.machine_info(),
        "quick": args.quick,
        "rev": args.rev,
        "threshold_wer": found["threshold_wer"],
        "reference_steps": None if args.quick else REFERENCE_STEPS,
        "fraction_of_peak": fraction_at if fraction_at is not None else found["fraction_of_peak"],
        "fraction_of_peak_by_model": found["fraction_of_peak"],
        "peak_gflops": found["peak"] / 1e9,
        "models": models,
        "headline": headline(models, fraction_at),
    }
    print(
        common.format_table(
            section["headline"],
            [("name", "name"), ("value", "value"), ("target", "target"), ("met", "met")],
        )
    )
    common.write_section(SECTION, section, args.results)
    return section


if __name__ == "__main__":
    main()
