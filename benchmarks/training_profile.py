r"""Where a training minute goes: the ``g2p.py:at`` and ``g2p.py:nat,ctc`` steps on 2 cores.

    python benchmarks/training_profile.py                  # both models, about 15 min
    python benchmarks/training_profile.py --quick          # fewer repetitions, no eval
    python benchmarks/training_profile.py --part=options   # step-cost ratios of the options
    python benchmarks/training_profile.py --part=flags     # XLA CPU flags, one process each

Issue 36, item 1. The batches are real: ``--batches`` consecutive batches of the training
iterator (B = 128, the g2p length buckets 8/12/16/32), so bucket shapes come in their real
mix. Three measurements, each a median over repetitions:

- **Inside the jitted step** (``--part=profile``): ``jax.profiler`` traces of the step give
  per-thunk times on XLA:CPU (each thunk is one fused HLO instruction). Every thunk is put in
  a category from the HLO it runs, read from the compiled module: a fusion with a ``dot`` is a
  matmul (of attention when the dot comes from ``ops/attention.py``, else a projection, FFN or
  the output layer); otherwise the category of the source files its ops were traced from
  (``ops/attention.py``: softmax and masking; ``ops/losses.py``, ``nat_ctc.py``,
  ``ops/ctc.py``, ``optax/losses``: the loss; other optax files: the optimizer update;
  ``ops/norms.py``: layer norm; flax's dropout; the rest: copies, residual adds, embeddings).
  Top-level thunk times are summed per category and scaled to the untraced step time.
  Matmul FLOPs are also counted analytically (``benchmarks/training.py``), to give the time
  they would take at the measured 2048^3 float32 ``jnp.dot`` peak.
- **Around the step**, interleaved (``common.interleaved_times``), ``--steps`` steps a call:
  ``step`` = the jitted step on batches fetched beforehand; ``loop`` = the body of
  ``attnlab.train.loop`` (fetch from the iterator, count tokens, shard, dispatch, read the
  previous step's metrics back); ``pipeline`` = fetching the same number of batches alone.
  ``loop - step`` is the host work and the part of the input pipeline the step does not hide.
- **Evaluation during training**: one evaluation as configured (teacher-forced pass over the
  validation split, then decoding ``eval_decode_examples`` words with ``decode_method``),
  amortized over ``eval_every_steps``, interleaved with cheaper settings.

``--part=options`` times step-cost ratios (no quality claims) of the choices that change
results, each against ``g2p.py`` as it is: bfloat16 compute, batch 256 and 512 against 128
per example, the earlier length buckets 8/12/16 against ``g2p.py``'s 2-letter buckets, the
CTC canvas k=3 against g2p.py's 2, the step without buffer donation, and (AT) the wider and
deeper ATs of at_vs_nat.py's tuning grid (``at=wide``, ``at=deep``; issue 37 allows 1.5x).
``--part=flags`` runs this script once per XLA_FLAGS setting in child processes, alternating
A, B, A, B, and reports the ratio of each child's median step time to the adjacent default
child's.

The tables are in docs/training_profile.md.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
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

from attnlab.data import make_eval_batches, make_train_iterator  # noqa: E402
from attnlab.train import loop as train_loop  # noqa: E402
from attnlab.train.checkpoint import Checkpointer  # noqa: E402
from attnlab.train.evaluate import decoding_metrics, teacher_forced_metrics  # noqa: E402
from attnlab.train.resolve import create_train_state, resolve_config  # noqa: E402
from attnlab.train.sharding import agree_any, make_mesh, shard_batch  # noqa: E402
from attnlab.train.steps import make_eval_step, make_train_step, merge_model  # noqa: E402
from benchmarks import common  # noqa: E402

MODELS = {"at": "at", "ctc": "nat,ctc"}
PEAK_SIZE = 2048
CATEGORIES = (
    "matmul: projections, FFN, output",
    "matmul: attention QK^T and AV",
    "attention: softmax, masks",
    "loss",
    "optimizer update",
    "layer norm",
    "dropout",
    "other: residual, embeddings, copies",
)
SOURCE_CATEGORIES = (  # the first matching source file decides a thunk without a dot
    ("attnlab/ops/attention.py", "attention: softmax, masks"),
    ("attnlab/ops/losses.py", "loss"),
    ("attnlab/ops/ctc.py", "loss"),
    ("attnlab/nat/ctc.py", "loss"),
    ("optax/losses", "loss"),
    ("optax/", "optimizer update"),
    ("attnlab/ops/norms.py", "layer norm"),
    ("flax/nnx/nn/stochastic.py", "dropout"),
)
FLAG_SETTINGS = {
    "default": "",
    "eigen_single_thread": "--xla_cpu_multi_thread_eigen=false",
    "onednn": "--xla_cpu_use_onednn=true",
    "no_xnnpack": "--xla_cpu_use_xnnpack=false",
    "concurrency_scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
}


# --- configs and real batches ---------------------------------------------------------------
AT_VS_NAT_CONFIG = common.ROOT / "experiments" / "configs" / "at_vs_nat.py"


def resolved(variant: str, **overrides: Any) -> ml_collections.ConfigDict:
    """``g2p.py:<variant>`` resolved against the built dataset, with ``overrides``."""
    config = common.load_config_file(f"{common.G2P_CONFIG}:{variant}")
    model = overrides.pop("model", {})
    data = overrides.pop("data", {})
    config.update(overrides)
    config.model.update(model)
    config.data.update(data)
    return resolve_config(config)[0]


def real_batches(config: ml_collections.ConfigDict, count: int) -> list[dict[str, np.ndarray]]:
    """The first ``count`` training batches of ``config`` (its seed), as the loop sees them."""
    iterator = make_train_iterator(config.data, batch_size=config.batch_size, seed=config.seed)
    return [next(iterator) for _ in range(count)]


def shape_of(batch: dict[str, np.ndarray]) -> tuple[int, int]:
    return int(batch["inputs"].shape[1]), int(batch["targets"].shape[1])


def tokens(batch: dict[str, np.ndarray]) -> int:
    """Non-PAD source and target tokens (the loop's ``tokens_per_sec`` count)."""
    return int(np.count_nonzero(batch["inputs"]) + np.count_nonzero(batch["targets"]))


def step_flops(config: ml_collections.ConfigDict, shape: tuple[int, int]) -> float:
    if config.model.name == "seq2seq":
        return float(common.analytic_flops(config.model, config.batch_size, *shape)[0])
    return common.nat_flops(config.model, config.batch_size, shape[0])


class Stepper:
    """A compiled train step that carries its (donated) state from call to call."""

    def __init__(self, config: ml_collections.ConfigDict, donate: bool = True) -> None:
        self.graphdef, self.state, self.optimizer = create_train_state(config)
        self.step_fn = make_train_step(self.graphdef, self.optimizer, config)
        if not donate:  # the same function, jitted without donating its state
            self.step_fn = jax.jit(self.step_fn.__wrapped__)
        self.count = 0

    def __call__(self, batch: dict[str, Any]) -> dict[str, jax.Array]:
        self.count += 1
        self.state, metrics = self.step_fn(self.state, batch, jnp.asarray(self.count, jnp.int32))
        return metrics


# --- the profile of the jitted step ---------------------------------------------------------
def _hlo_index(text: str) -> tuple[dict[str, list[str]], dict[str, str], dict[int, list[str]]]:
    """From compiled HLO text: computation -> its instruction lines, instruction -> its
    computation, and stack frame id -> the source files of its frames (innermost first)."""
    names = (
        text[text.index("FileNames") : text.index("FunctionNames")] if "FileNames" in text else ""
    )
    files = {int(m[1]): m[2] for m in re.finditer(r'^(\d+) "(.*)"$', names, re.M)}
    locations = {
        int(m[1]): int(m[2]) for m in re.finditer(r"^(\d+) \{file_name_id=(\d+)", text, re.M)
    }
    frames = {
        int(m[1]): (int(m[2]), int(m[3]))
        for m in re.finditer(r"^(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)\}", text, re.M)
    }
    chains: dict[int, list[str]] = {}
    for frame in frames:
        chain, seen, current = [], set(), frame
        while current in frames and current not in seen:
            seen.add(current)
            location, parent = frames[current]
            chain.append(files.get(locations.get(location, -1), ""))
            current = parent
        chains[frame] = chain
    computations: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    current_name = None
    for line in text.splitlines():
        header = re.match(r"^(?:ENTRY )?%(\S+) \(", line)
        if header:
            current_name = header[1]
            computations[current_name] = []
            continue
        instr = re.match(r"^\s+(?:ROOT )?%(\S+) = ", line)
        if instr and current_name is not None:
            computations[current_name].append(line)
            owner[instr[1]] = current_name
    return computations, owner, chains


def categorize(name: str, text_index: tuple) -> str:
    """The category of the thunk that runs HLO instruction ``name``."""
    computations, owner, chains = text_index
    base = name.split(":")[-1].strip()
    lines: list[str] = []
    if base in owner:
        lines = [line for line in computations[owner[base]] if f"%{base} = " in line]
    pending, seen = list(lines), set()
    ops = []
    while pending:  # the instruction and everything its called computations hold
        line = pending.pop()
        ops.append(line)
        for called in re.findall(r"(?:calls|to_apply|body|condition)=%([\w.\-]+)", line):
            if called not in seen and called in computations:
                seen.add(called)
                pending.extend(computations[called])
    votes: collections.Counter = collections.Counter()
    has_dot = False
    for line in ops:
        is_dot = bool(re.search(r"= \S+ (dot|convolution)\(", line))
        frame = re.search(r"stack_frame_id=(\d+)", line)
        sources = chains.get(int(frame[1]), []) if frame else []
        in_attention = any("attnlab/ops/attention.py" in s for s in sources)
        if is_dot:
            has_dot = True
            votes["matmul: attention QK^T and AV" if in_attention else CATEGORIES[0]] += 100
            continue
        for source in sources:
            hit = next((c for key, c in SOURCE_CATEGORIES if key in source), None)
            if hit:
                votes[hit] += 1
                break
    if has_dot:
        return max((k for k in votes if k.startswith("matmul")), key=votes.__getitem__)
    return votes.most_common(1)[0][0] if votes else CATEGORIES[-1]


def _thunk_events(xplane: str) -> list[tuple[str, float]]:
    """(name, seconds) of every innermost thunk event on XLA's CPU threads."""
    from jax._src.lib import _profile_data

    profile = _profile_data.ProfileData.from_file(xplane)
    out = []
    for plane in profile.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            events = sorted(
                (
                    e
                    for e in line.events
                    if not e.name.startswith(("end: ", "Threadpool", "ThunkExecutor"))
                ),
                key=lambda e: e.start_ns,
            )
            for i, event in enumerate(events):  # leaves only: a thunk that holds others
                end = event.start_ns + event.duration_ns  # (a while loop) counts them once
                if i + 1 < len(events) and events[i + 1].start_ns < end:
                    continue
                out.append((event.name, event.duration_ns * 1e-9))
    return out


def profile_step(stepper: Stepper, batch: dict[str, Any], steps: int) -> dict[str, float]:
    """Seconds per step of each category, summed over thunks (traced, ``steps`` steps)."""
    state_args = (stepper.state, batch, jnp.asarray(1, jnp.int32))
    index = _hlo_index(stepper.step_fn.lower(*state_args).compile().as_text())
    for _ in range(2):
        jax.block_until_ready(stepper(batch))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(steps):
                jax.block_until_ready(stepper(batch))
        xplane = sorted(glob.glob(f"{tmp}/**/*.xplane.pb", recursive=True))[-1]
        events = _thunk_events(xplane)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    cache: dict[str, str] = {}
    for name, seconds in events:
        category = cache.setdefault(name, categorize(name, index))
        totals[category] += seconds / steps
    return totals


def mix_weights(batches: list[dict]) -> dict[tuple[int, int], float]:
    counts = collections.Counter(shape_of(b) for b in batches)
    return {shape: n / len(batches) for shape, n in sorted(counts.items())}


def profile_model(name: str, batches: list[dict], steps: int, config) -> dict[str, Any]:
    """The weighted per-category breakdown of one model's step over the real bucket mix."""
    weights = mix_weights(batches)
    stepper = Stepper(config)
    per_shape, flops = {}, 0.0
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for shape, weight in weights.items():
        batch = {
            k: jnp.asarray(v) for k, v in next(b for b in batches if shape_of(b) == shape).items()
        }
        per_shape[shape] = profile_step(stepper, batch, steps)
        for category, seconds in per_shape[shape].items():
            totals[category] += weight * seconds
        flops += weight * step_flops(config, shape)
    return {"model": name, "weights": weights, "thunk_seconds": totals, "flops": flops}


# --- around the step: host work and the input pipeline --------------------------------------
def around_step(config, batches_ahead: int, steps: int, repeats: int) -> dict[str, list[float]]:
    """Interleaved seconds per ``steps`` steps: step alone, the loop body, the pipeline alone,
    and the 2048^3 matmul (the peak)."""
    mesh = make_mesh()
    fetched = make_train_iterator(config.data, batch_size=config.batch_size, seed=config.seed)
    ahead = [shard_batch(next(fetched), mesh) for _ in range(batches_ahead)]
    live = make_train_iterator(config.data, batch_size=config.batch_size, seed=config.seed)
    alone = make_train_iterator(config.data, batch_size=config.batch_size, seed=config.seed + 1)
    stepper_a, stepper_b = Stepper(config), Stepper(config)
    position = {"ahead": 0}
    pending: list[Any] = []

    def step_alone():
        for _ in range(steps):
            metrics = stepper_a(ahead[position["ahead"] % len(ahead)])
            position["ahead"] += 1
        return metrics

    def loop_body():  # attnlab.train.loop._Run.run, one iteration per step, no eval or save
        for _ in range(steps):
            batch = next(live)
            train_loop._count_tokens(batch)
            metrics = stepper_b(shard_batch(batch, mesh))
            if pending:
                values = {k: float(v) for k, v in jax.device_get(pending.pop()).items()}
                assert all(np.isfinite(values[k]) for k in train_loop._CHECKED)
            pending.append(metrics)
            agree_any(False)
        return metrics

    def pipeline():
        return [next(alone) for _ in range(steps)][-1]["inputs"]

    a, b = common.random_arrays(0, (PEAK_SIZE, PEAK_SIZE), 2)
    matmul = jax.jit(jnp.dot)
    # The two steppers must see the same batches: both start at the iterator's first batch.
    return common.interleaved_times(
        {
            "step": step_alone,
            "loop": loop_body,
            "pipeline": pipeline,
            "matmul": lambda: matmul(a, b),
        },
        repeats,
        warmup=1,
    )


# --- evaluation during training -------------------------------------------------------------
def restored(stepper: Stepper, config, workdir: str) -> Stepper:
    """``stepper`` with the latest checkpoint of a run of ``config`` in ``workdir``."""
    ckpt = Checkpointer(Path(workdir) / "checkpoints", max_to_keep=1, read_only=True)
    try:
        found = ckpt.restore(stepper.state, model_config=config.model.to_dict())
    finally:
        ckpt.close()
    if found is None:
        raise SystemExit(f"no readable checkpoint in {workdir}/checkpoints")
    stepper.state, meta = found
    print(f"evaluating the checkpoint of step {meta['step']} in {workdir}")
    return stepper


def eval_contenders(config, stepper: Stepper) -> dict[str, Any]:
    """One evaluation as configured, and cheaper ones, on the step's current state (a trained
    checkpoint: an untrained AT never emits EOS, so its beam search runs to the maximum)."""
    _, info = resolve_config(config)
    mesh = make_mesh()
    batches = list(
        make_eval_batches(config.data, config.eval_split, batch_size=config.eval_batch_size)
    )
    eval_step = make_eval_step(stepper.graphdef, config)

    def evaluation(**changes):
        cfg = ml_collections.ConfigDict(config.to_dict())
        cfg.update(changes)

        def run():
            state = stepper.state
            metrics = teacher_forced_metrics(
                eval_step, state, batches, mesh, should_stop=lambda: False
            )
            model = merge_model(stepper.graphdef, state)
            metrics.update(
                decoding_metrics(model, batches, cfg, info.tgt_vocab, should_stop=lambda: False)
            )
            return jnp.asarray(metrics["eval_loss"])

        return run

    contenders = {"as configured": evaluation()}
    if config.model.name == "seq2seq" and config.decode_method == "beam":
        contenders["greedy"] = evaluation(decode_method="greedy")
    contenders["512 words"] = evaluation(eval_decode_examples=512)
    contenders["teacher-forced only"] = evaluation(eval_decode_examples=0)
    return contenders


# --- reports --------------------------------------------------------------------------------
def quartiles(values) -> dict[str, float]:
    q25, median, q75 = np.percentile(np.asarray(values, float), [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}


def run_profile(args) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name in args.models:
        config = resolved(MODELS[name])
        batches = real_batches(config, args.batches)
        prof = profile_model(name, batches, args.trace_steps, config)
        times = around_step(config, args.batches, args.steps, args.repeats)
        step_s = float(np.median(times["step"])) / args.steps
        loop_s = float(np.median(times["loop"])) / args.steps
        pipe_s = float(np.median(times["pipeline"])) / args.steps
        peak = 2 * PEAK_SIZE**3 / float(np.median(times["matmul"]))
        thunks = prof["thunk_seconds"]
        scale = step_s / max(sum(thunks.values()), 1e-12)
        rows = [{"piece": k, "seconds": v * scale} for k, v in thunks.items()]
        rows.append(
            {
                "piece": "host work + unhidden input pipeline (loop - step)",
                "seconds": loop_s - step_s,
            }
        )
        evals: dict[str, Any] = {}
        if not args.quick:
            stepper = Stepper(config)
            if name in args.workdirs:
                stepper = restored(stepper, config, args.workdirs[name])
            contenders = eval_contenders(config, stepper)
            eval_times = common.interleaved_times(contenders, args.eval_repeats, warmup=1)
            evals = {k: quartiles(v) for k, v in eval_times.items()}
            rows.append(
                {
                    "piece": f"evaluation as configured, every {config.eval_every_steps} steps",
                    "seconds": evals["as configured"]["median"] / config.eval_every_steps,
                }
            )
        total = sum(r["seconds"] for r in rows)
        for row in rows:
            row["fraction"] = row["seconds"] / total
        analytic_matmul_s = prof["flops"] / peak
        report[name] = {
            "config": f"g2p.py:{MODELS[name]}",
            "bucket_mix": {f"S={s},T={t}": w for (s, t), w in prof["weights"].items()},
            "step_s": step_s,
            "step_quartiles_s": quartiles(np.asarray(times["step"]) / args.steps),
            "loop_s": loop_s,
            "loop_over_step": common.paired_ratio(times["loop"], times["step"]),
            "pipeline_s_per_batch": pipe_s,
            "pipeline_batches_per_s": 1.0 / pipe_s,
            "peak_gflops": peak / 1e9,
            "analytic_gflop_per_step": prof["flops"] / 1e9,
            "matmuls_at_peak_s": analytic_matmul_s,
            "fraction_of_peak": analytic_matmul_s / step_s,
            "traced_thunk_s": sum(thunks.values()),
            "rows": rows,
            "eval_s": evals,
            "eval_every_steps": int(config.eval_every_steps),
        }
        print(
            f"\n{name}: step {step_s * 1e3:.1f} ms, loop {loop_s * 1e3:.1f} ms, "
            f"pipeline {1 / pipe_s:.1f} batches/s, {analytic_matmul_s / step_s:.1%} of peak"
        )
        print(
            common.format_table(
                rows, [("piece", "piece"), ("seconds", "s/step"), ("fraction", "fraction")]
            )
        )
        if evals:
            print(json.dumps(evals, indent=1))
    return report


def run_options(args) -> dict[str, Any]:
    """Step-cost ratios of options that change results, per example, interleaved."""
    report = {}
    for name in args.models:
        base = resolved(MODELS[name])
        variants = {
            "base": base,
            "bfloat16": resolved(MODELS[name], compute_dtype="bfloat16"),
            "batch 256": resolved(MODELS[name], batch_size=256),
            "batch 512": resolved(MODELS[name], batch_size=512),
            "buckets 8/12/16": resolved(MODELS[name], data={"bucket_boundaries": (8, 12, 16)}),
        }
        if name == "ctc":
            variants["k=3"] = resolved(MODELS[name], model={"upsample": 3})
        if name == "at":  # issue 37's bigger ATs (at_vs_nat.py's AT_TUNING; bar: at most 1.5x)
            for size in ("wide", "deep"):
                tuned = common.load_config_file(f"{AT_VS_NAT_CONFIG}:g2p,at={size}").at
                variants[f"at={size}"] = resolve_config(tuned)[0]
        steppers = {k: Stepper(v) for k, v in variants.items()}
        steppers["no donation"] = Stepper(base, donate=False)
        batches = {}
        for key, cfg in variants.items():
            rows = real_batches(cfg, args.batches)
            batches[key] = [{k: jnp.asarray(v) for k, v in b.items()} for b in rows]
        batches["no donation"] = batches["base"]
        examples = {k: (variants.get(k, base)).batch_size for k in steppers}
        cursor = dict.fromkeys(steppers, 0)

        def contender(key, steppers=steppers, batches=batches, cursor=cursor):
            def run():
                for _ in range(args.steps):
                    out = steppers[key](batches[key][cursor[key] % len(batches[key])])
                    cursor[key] += 1
                return out

            return run

        times = common.interleaved_times(
            {k: contender(k) for k in steppers}, args.repeats, warmup=1
        )
        rows = []
        for key in steppers:
            per_example = np.asarray(times[key]) / examples[key]
            ratio = common.paired_ratio(per_example, np.asarray(times["base"]) / examples["base"])
            rows.append(
                {
                    "option": key,
                    "ms_per_step": float(np.median(times[key])) * 1e3 / args.steps,
                    "cost_per_example_vs_base": ratio["median"],
                    "q25": ratio["q25"],
                    "q75": ratio["q75"],
                }
            )
        report[name] = rows
        print(f"\n{name} (cost per example relative to g2p.py:{MODELS[name]} as it is)")
        print(common.format_table(rows, [(k, k) for k in rows[0]]))
    return report


def flag_child(args) -> None:
    """One child of --part=flags: the median step time of each model, as JSON on stdout."""
    out = {}
    for name in args.models:
        config = resolved(MODELS[name])
        batches = [
            {k: jnp.asarray(v) for k, v in b.items()} for b in real_batches(config, args.batches)
        ]
        stepper = Stepper(config)
        for batch in batches[:3]:
            jax.block_until_ready(stepper(batch))
        times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            for j in range(args.steps):
                metrics = stepper(batches[(i * args.steps + j) % len(batches)])
            jax.block_until_ready(metrics)
            times.append((time.perf_counter() - start) / args.steps)
        out[name] = float(np.median(times))
    print("RESULT " + json.dumps(out))


def run_flags(args) -> dict[str, Any]:
    """Each flag setting against the default, in alternating child processes."""
    samples: dict[str, list[dict]] = collections.defaultdict(list)
    order = [k for k in FLAG_SETTINGS if k != "default"]
    for _ in range(args.flag_rounds):
        for setting in order:
            for which in ("default", setting):
                env = {**os.environ, "XLA_FLAGS": FLAG_SETTINGS[which]}
                cmd = [
                    sys.executable,
                    __file__,
                    "--part=flag_child",
                    f"--models={','.join(args.models)}",
                    f"--steps={args.steps}",
                    f"--repeats={args.repeats}",
                    f"--batches={args.batches}",
                ]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
                samples[f"{setting}/{which}"].append(json.loads(line[7:]))
    report = {}
    for setting in order:
        rows = {}
        for name in args.models:
            ours = [s[name] for s in samples[f"{setting}/{setting}"]]
            ref = [s[name] for s in samples[f"{setting}/default"]]
            rows[name] = common.paired_ratio(ours, ref)
        report[setting] = {"flags": FLAG_SETTINGS[setting], "step_time_vs_default": rows}
        print(setting, FLAG_SETTINGS[setting], json.dumps(rows))
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--part", default="profile", help="profile | options | flags")
    parser.add_argument("--models", default="at,ctc", help="comma-separated: at, ctc")
    parser.add_argument("--batches", type=int, default=40, help="real training batches used")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed call")
    parser.add_argument("--trace_steps", type=int, default=3, help="traced steps per bucket")
    parser.add_argument("--eval_repeats", type=int, default=2, help="repetitions of evaluation")
    parser.add_argument("--flag_rounds", type=int, default=2, help="A/B child pairs per flag")
    parser.add_argument(
        "--workdirs", default="", help="at=DIR,ctc=DIR: runs whose checkpoints are evaluated"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    args.workdirs = dict(item.split("=", 1) for item in args.workdirs.split(",") if item)
    args.models = [m for m in args.models.split(",") if m]
    if not args.models or set(args.models) - set(MODELS):
        raise SystemExit(f"--models {','.join(args.models)!r}; valid: {', '.join(MODELS)}")
    parts = {"profile": run_profile, "options": run_options, "flags": run_flags}
    if args.part == "flag_child":
        flag_child(args)
        return {}
    if args.part not in parts:
        raise SystemExit(f"--part {args.part!r}; valid: {', '.join(parts)}")
    args.repeats = args.repeats or (3 if args.quick else 7)
    report = {
        "command": common.command_line(__file__, argv),
        "machine": common.machine_info(),
        args.part: parts[args.part](args),
    }
    if args.out:
        with contextlib.suppress(FileNotFoundError):
            previous = json.loads(args.out.read_text())
            report = {**previous, **report}
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


if __name__ == "__main__":
    main()
