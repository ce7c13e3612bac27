"""The AT-versus-NAT experiment: ``run(config, workdir)`` trains (or resumes) every model
(``MODELS``) that a system of ``config.systems`` needs, each under ``workdir/<model>``, decodes
the test split with every system, writes ``results.json`` and renders ``report.md`` from it
(``analysis.report.render``). Given ``config.recorded``, systems whose models trained in an
earlier run are read from their records and timed on fresh models (docs/recorded_outputs.md).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from attnlab.analysis import plots, recorded, wfst_baseline
from attnlab.analysis.dag_paths import dag_confidence
from attnlab.analysis.latency import (
    measure_latency_vs_length,
    search_steps,
    side_by_side,
    speed_ratios,
)
from attnlab.analysis.report import render, table
from attnlab.analysis.scoring import error_kinds, paired_wer_difference, score
from attnlab.analysis.systems import (
    BASELINES,
    SPEED_BASES,
    SYSTEMS,
    TUNING_MODELS,
    Timing,
    make_decoder,
    one_pass,
    run_system,
    timing_of,
    valid_rows,
)
from attnlab.data import dataset_info, make_eval_batches
from attnlab.decode.at import at_decode
from attnlab.nat.dag import DAG
from attnlab.nat.decoding import nat_decode
from attnlab.nn.attention import capture_cross_attention
from attnlab.specials import BOS, EOS, MASK, PAD
from attnlab.train import train_and_evaluate
from attnlab.train.checkpoint import Checkpointer
from attnlab.train.distill import PAIRS_FILE, distilled_data_config
from attnlab.train.models import build_model
from attnlab.train.resolve import resolve_config
from attnlab.train.restore import restore
from attnlab.train.workdir import check_writable, has_history, read_trained_config, write_config
from attnlab.train.writers import read_metrics


class TrainingStopped(Exception):  # noqa: N818 - a stop on request, not an error
    """SIGTERM or Ctrl-C stopped a model's training; its checkpoint is saved."""


def _train(config: ml_collections.ConfigDict, workdir: Path) -> None:
    result = train_and_evaluate(config, workdir)
    if result["preempted"]:
        raise TrainingStopped(
            f"stopped training {workdir.name!r} at step {result['step']} on {result['signal']}; "
            f"checkpoint saved in {workdir}; run the same command to resume"
        )


def parse_systems(spec: str) -> list[str]:
    """``"at_greedy,nat_length_pred,at_beam4@8000"`` -> names, refusing unknown ones with the
    valid list. ``<system>@<step>`` decodes the model's checkpoint of that step
    (``recorded.split_step``), one its training config keeps (``keep_checkpoint_steps``)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    valid = [*SYSTEMS, *BASELINES]
    for name in names:
        base, _, step = name.partition("@")
        if base not in valid or (base in BASELINES and "@" in name):
            raise ValueError(f"unknown system {name!r}; valid: {', '.join(valid)}")
        if "@" in name and not (step.isdigit() and int(step) > 0):
            raise ValueError(f"system {name!r}: the step after '@' must be a positive integer")
    if not names:
        raise ValueError(f"unknown system {spec!r}; valid: {', '.join(valid)}")
    return names


def _system_of(name: str):
    """The ``System`` of a name of ``parse_systems``."""
    return SYSTEMS[recorded.split_step(name)[0]]


def count_params(model: nnx.Module) -> int:
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


# Every model the systems can use, in training order. Each is ``config.<key>``, an ordinary
# training config. A ``*_kd`` model trains on the AT model's beam outputs of the training
# split (sequence-level distillation, Kim & Rush 2016), so the AT model comes first.
MAIN_MODELS = (  # the main table: one budget for all (issue 37), the AT's
    "at",  # the AT Seq2Seq
    "at_ds",  # the deep-encoder, shallow-decoder AT (Kasai et al. 2021)
    "nat",  # the vanilla NAT with length prediction (Gu et al. 2018)
    "nat_cmlm",  # the cmlm recipe: mask-predict (Ghazvininejad et al. 2019)
    "nat_eos",  # eos_canvas: no length head, decoded by eos_cut
    "nat_glat",  # vanilla with glancing (Qian et al. 2021)
    "nat_ctc",  # ctc (Libovicky & Helcl 2018)
    "nat_ctc_glat",  # ctc with glancing (Gu & Kong 2021)
    "nat_dag",  # DA-Transformer with glancing (Huang et al. 2022)
    "nat_kd",  # nat (vanilla), distilled
    "nat_dag_kd",  # nat_dag, distilled
    "nat_ctc_kd",  # nat_ctc, distilled (the best one-pass NAT of the second edition)
)
# The ablations (issue 37), each trained for the ablation budget (the config's ABLATION_STEPS)
# at the base AT's size: the AT and its tuning grid (compared on validation, never decoded on
# the test split), glancing schedules on CTC and vanilla, the DAG's graph size, the CTC canvas.
ABLATION_MODELS = (
    "at_8k",  # the base AT
    *TUNING_MODELS,  # and its tuning grid
    "nat_ctc_8k",  # CTC without glancing
    "nat_ctc_glat_linear",  # glancing 0.5 -> 0.3 over all of training (the second edition's)
    "nat_ctc_glat_anneal",  # glancing 0.5 -> 0.1 over two thirds of training, then held
    "nat_vanilla_8k",  # the same three on the vanilla NAT
    "nat_glat_linear",
    "nat_glat_anneal",
    "nat_dag_x2",  # the DAG with 2, 4 and 8 vertices per source token
    "nat_dag_x4",
    "nat_dag_x8",
    "nat_dag_8k_kd",  # the DAG of MAIN_DAG_UPSAMPLE, distilled: is the main table's distilled?
    "nat_ctc_x2",  # the CTC canvas, 2 and 3 positions per source token
    "nat_ctc_x3",
)
MODELS = MAIN_MODELS + ABLATION_MODELS


def _names(spec: str) -> list[str]:
    return [s.strip() for s in str(spec).split(",") if s.strip()]


def is_distilled(key: str) -> bool:
    return key.endswith("_kd")


def aliases(config: ml_collections.ConfigDict) -> dict[str, str]:
    """``{model: earlier model}`` for each model whose training config equals an earlier one's
    in MODELS (distilled models, whose data is set at run time, excepted): they are one
    training. ``train_models`` trains the earlier and links ``DIR/<model>`` to it. Full
    ``g2p``: the canvas ablation's ``nat_ctc_x2`` is ``nat_ctc_8k`` (CTC_UPSAMPLE is 2)."""
    seen: dict[str, str] = {}
    out = {}
    for key in (k for k in MODELS if k in config and not is_distilled(k)):
        same = seen.setdefault(json.dumps(config[key].to_dict(), sort_keys=True, default=str), key)
        if same != key:
            out[key] = same
    return out


def _link(workdir: Path, key: str, same: str) -> None:
    """``DIR/<key>`` -> ``DIR/<same>`` (relative), unless ``DIR/<key>`` is there already (a
    model trained on its own before its config matched another's keeps its training)."""
    path = workdir / key
    if not path.exists() and not path.is_symlink():
        workdir.mkdir(parents=True, exist_ok=True)
        path.symlink_to(same, target_is_directory=True)


def parameter_counts(config: ml_collections.ConfigDict, keys) -> dict[str, int]:
    """Each model's parameters, from its config resolved on the dataset (its vocabularies), on
    shapes alone (``nnx.eval_shape``): nothing is allocated or initialized."""
    counts = {}
    for key in keys:
        resolved = resolve_config(config[key])[0]
        shapes = nnx.eval_shape(lambda c=resolved: build_model(c.model, rngs=nnx.Rngs(0)))
        counts[key] = count_params(shapes)
    return counts


def size_table(config: ml_collections.ConfigDict, keys=MAIN_MODELS) -> str:
    """The models' parameters against the AT's, as Markdown (issue 37: the main table's
    models within 5% of the AT)."""
    counts = parameter_counts(config, dict.fromkeys(("at", *keys)))
    rows = [[k, f"{n:,}", f"{100 * (n / counts['at'] - 1):+.1f}%"] for k, n in counts.items()]
    return "\n".join(table(["model", "parameters", "against at"], rows))


def training_summary(run_dir: Path, key: str) -> str:
    """One line on a trained model: its last validation WER (``eval_wer``, the config's
    decoding of the first ``eval_decode_examples`` words) and the time of its training steps."""
    metrics = read_metrics(Path(run_dir) / key)
    evals = [r for r in metrics if "eval_wer" in r]
    if not evals:
        return f"{key}: no evaluation in {Path(run_dir) / key}"
    step = int(evals[-1]["step"])
    took = training_seconds(metrics, [step])
    took = f"; {took[0][1] / 60:.1f} min of training steps" if took else ""
    return f"{key}: validation WER {100 * evals[-1]['eval_wer']:.2f}% at step {step}{took}"


def train_models(
    config: ml_collections.ConfigDict,
    workdir: Path,
    systems: list[str],
    only: str = "",
    recorded_dir: str = "",
) -> tuple[dict[str, nnx.Module], dict[str, int]]:
    """Train or resume every model the systems need; return them restored, and their steps.
    ``only`` trains just that model, so that parallel processes can train them (a ``*_kd``
    model needs the finished AT teacher; the first to need the distilled data writes it). With
    ``recorded_dir`` the teacher's outputs are recorded there, and read from there when the
    teacher has no checkpoint in the workdir (``analysis.recorded``)."""
    needed = {key for s in systems for key in _system_of(s)[::2] if key}
    if only:
        if only not in MODELS:
            raise ValueError(f"unknown train_only model {only!r}; valid: {', '.join(MODELS)}")
        needed = {only}
    recorded_teacher = (
        bool(recorded_dir)
        and not has_history(workdir / "at")
        and (Path(recorded_dir) / PAIRS_FILE).exists()
    )
    if any(is_distilled(key) for key in needed) and not recorded_teacher:
        needed.add("at")  # the teacher
    average = int(config.get("average_checkpoints", 1))
    models: dict[str, nnx.Module] = {}
    steps: dict[str, int] = {}
    distilled = None
    same_as = aliases(config)
    for key in (k for k in MODELS if k in needed):
        if key in same_as:
            _link(workdir, key, same_as[key])
            if same_as[key] in models:  # trained above: one model
                models[key], steps[key] = models[same_as[key]], steps[same_as[key]]
                continue
        train_config = config[key]
        if is_distilled(key):
            if distilled is None:
                distilled = distilled_data_config(
                    models.get("at"),
                    config.at.data,
                    workdir / "distilled",
                    beam_size=config.distill_beam_size,
                    batch_size=config.distill_batch_size,
                    length_penalty=config.at.length_penalty,
                    recorded_dir=recorded_dir,
                )
            train_config = ml_collections.ConfigDict(train_config.to_dict())
            train_config.data = distilled
        if key == "at" and is_distilled(only):
            _check_finished(config.at, workdir / key)
        else:
            logging.info("training %s in %s", key, workdir / key)
            _train(train_config, workdir / key)
        models[key], _, steps[key] = restore(workdir / key, average_last=average)
    return models, steps


def _check_finished(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Refuse to distill from a teacher that another process is still training."""
    ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=1, read_only=True)
    try:
        step = ckpt.latest_step()
    finally:
        ckpt.close()
    if step is None or step < int(config.num_train_steps):
        raise ValueError(
            f"the AT teacher in {workdir} is at step {step} of {config.num_train_steps}: "
            "train it first (train_only=at)"
        )


def _test_batches(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """The test split; with ``max_test_examples``, the batches up to it, the rest invalid."""
    data, limit = config.at.data, int(config.max_test_examples)
    kept, seen = [], 0
    for batch in make_eval_batches(data, config.test_split, batch_size=config.eval_batch_size):
        if limit > 0:
            if seen >= limit:
                break
            valid = np.asarray(batch["valid"], bool)
            batch = {**batch, "valid": valid & (np.cumsum(valid) <= limit - seen)}
            seen += int(batch["valid"].sum())
        kept.append(batch)
    return kept


def _check(config: ml_collections.ConfigDict, workdir: Path) -> list[str]:
    """The systems to decode, after the checks that come before any work."""
    check_writable(workdir)
    writeup = str(config.get("writeup", ""))
    if writeup and not Path(writeup).is_file():
        raise FileNotFoundError(f"writeup {writeup}: no such file (config.writeup; '' for none)")
    systems = parse_systems(config.systems)
    if not config.distill:
        systems = [s for s in systems if s in BASELINES or not is_distilled(_system_of(s).model)]
    write_config(workdir, config)  # each model's own workdir checks its training config
    return systems


@dataclass
class _Run:
    """What every system's decode shares: the run's settings, test data and models."""

    config: ml_collections.ConfigDict
    workdir: Path
    batches: list[dict[str, Any]]
    refs: list[list[list[str]]]
    vocab: Any
    models: dict[str, nnx.Module]
    steps: dict[str, int]
    taken: dict[str, recorded.Record]
    fresh: dict[str, nnx.Module]

    @property
    def max_len(self) -> int:
        return int(self.batches[0]["targets"].shape[1])


def validation_curves(run_dir: Path, keys, metric: str = "eval_wer") -> dict[str, list]:
    """``{model: [[step, value], ...]}`` of each model's evaluations during training (its
    ``metrics.jsonl``); models never evaluated are left out."""
    curves = {}
    for key in keys:
        points = [[r["step"], r[metric]] for r in read_metrics(run_dir / key) if metric in r]
        if points:
            curves[key] = points
    return curves


def training_seconds(metrics: list[dict], steps) -> list[list[float]]:
    """``[[step, seconds], ...]``: for each of ``steps``, the time the training steps up to it
    took, from ``metrics.jsonl``'s logged intervals: each log line's ``steps_per_sec`` covers
    the steps since the line before (evaluations excluded, compiling included; steps trained
    before a stop and never logged are counted at the rate after the resume). A step past the
    last log line is left out."""
    logged = sorted((int(r["step"]), float(r["steps_per_sec"])) for r in metrics
                    if r.get("steps_per_sec"))  # fmt: skip
    out, seconds, before, i = [], 0.0, 0, 0
    for step in sorted(int(s) for s in steps):
        while i < len(logged) and logged[i][0] <= step:
            seconds += (logged[i][0] - before) / logged[i][1]
            before, i = logged[i][0], i + 1
        if before == step or i < len(logged):  # between two log lines: at the later one's rate
            extra = (step - before) / logged[i][1] if before < step else 0.0
            out.append([step, seconds + extra])
    return out


def training_time(run_dir: Path, keys, metric: str = "eval_wer") -> dict[str, list]:
    """``{model: [[step, seconds], ...]}`` at each evaluation of ``metric`` (the points of
    ``validation_curves``), by ``training_seconds``."""
    times = {}
    for key in keys:
        metrics = read_metrics(run_dir / key)
        points = training_seconds(metrics, [r["step"] for r in metrics if metric in r])
        if points:
            times[key] = points
    return times


def _checkpoint(ctx: _Run, key: str, step: int | None) -> tuple[nnx.Module, int]:
    """Model ``key`` and its step: the run's (the last checkpoints), or those of ``step``."""
    if step is None:
        return ctx.models[key], ctx.steps[key]
    average = int(ctx.config.get("average_checkpoints", 1))
    model, _, got = restore(ctx.workdir / key, step=step, average_last=average)
    return model, got


def _system(ctx: _Run, name: str) -> tuple[dict[str, Any], list[list[str]], dict, dict, Timing]:
    """The system's row of the results table (but its timing), its outputs, its models'
    validation curves and training times, and the calls that time it: decoded here (recorded
    where ``config.recorded`` is set), or read from its record and timed on a fresh model."""
    key, method, rescorer = _system_of(name)
    config, record = ctx.config, ctx.taken.get(name)
    settings = dict(max_len=ctx.max_len, length_penalty=config.at.length_penalty)
    if record:
        logging.info("%s: outputs recorded; timing a fresh model on their decode", name)
        rescore = ctx.fresh[rescorer] if rescorer else None
        how = dict(latency_examples=config.latency_examples, rescorer=rescore)
        timing = recorded.timed(record, ctx.fresh[key], ctx.batches, **how, **settings)
        hyps, lengths, step, params = record.hyps, record.lengths, record.step, record.params
        curves = {key: record.curve} if record.curve else {}
        times = {key: record.training_time} if record.training_time else {}
    else:
        logging.info("decoding the %s split with %s", config.test_split, name)
        at_step = recorded.split_step(name)[1]
        model, step = _checkpoint(ctx, key, at_step)
        rescore = _checkpoint(ctx, rescorer, at_step)[0] if rescorer else None
        decode = make_decoder(model, method, rescorer=rescore, **settings)
        done = run_system(name, decode, ctx.batches)
        hyps, lengths = [ctx.vocab.decode(h) for h in done.hyps], done.lengths
        timing = timing_of(decode, ctx.batches, latency_examples=config.latency_examples,
                           how="trained model")  # fmt: skip
        # A rescored system runs two models: it holds both models' weights.
        params = count_params(model) + (count_params(rescore) if rescore else 0)
        curves = validation_curves(ctx.workdir, [k for k in (key, rescorer) if k])
        times = training_time(ctx.workdir, [k for k in (key, rescorer) if k])
    if not record and config.get("recorded", ""):
        trained_config = lambda k: read_trained_config(ctx.workdir / k).to_dict()
        made = recorded.Record(
            system=name,
            model=key,
            decoding=method,
            split=config.test_split,
            references_digest=recorded.references_digest(ctx.refs),
            step=step,
            params=params,
            config=trained_config(key),
            curve=curves.get(key, []),
            hyps=hyps,
            lengths=lengths,
            output_lengths=[len(h) + 1 for h in done.hyps],
            steps=search_steps(model, method, ctx.batches, done.hyps, **settings),
            candidates=recorded.candidate_lengths(
                model, method, ctx.batches, max_len=ctx.max_len, chosen=lengths
            ),
            rescorer_config=trained_config(rescorer) if rescorer else None,
            training_time=times.get(key),
            revision=recorded.code_revision(),
        )
        recorded.save(config.recorded, made)
    row = {"system": name, "model": key, "decoding": method}
    row.update({"rescored_by": rescorer} if rescorer else {})
    row.update(score(hyps, ctx.refs, detokenize=ctx.vocab.detokenize, lengths=lengths,
                     bootstrap_samples=config.bootstrap_samples, seed=config.seed))  # fmt: skip
    row.update(error_kinds(hyps, ctx.refs))
    row.update(
        params=params,
        step=step,
        outputs="recorded" if record else "decoded",
        one_pass=one_pass(recorded.split_step(name)[0]),
        ablation=key in ABLATION_MODELS,
    )
    seconds = {int(s): t for s, t in times.get(key, [])}
    row.update({"train_seconds": seconds[step]} if step in seconds else {})
    return row, hyps, curves, times, timing


def agreement(outputs: dict[str, list], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each model decoded more than one way at one step: the share of examples where all
    its decodings give the same output."""
    by_model: dict[tuple[str, Any], list[str]] = {}
    for r in rows:
        by_model.setdefault((r["model"], r.get("step")), []).append(r["system"])
    out = []
    for (model, _), names in ((m, n) for m, n in by_model.items() if len(n) > 1):
        same = [len({tuple(o) for o in outs}) == 1 for outs in zip(*(outputs[n] for n in names))]
        out.append({"model": model, "systems": names, "same": sum(same) / len(same)})
    return out


def dag_paths(models, batches, rows, *, max_examples: int = 1024) -> dict[str, dict[str, Any]]:
    """For each DAG model of the table, how certain its greedy path is (``dag_paths``), over
    the first test batches up to the first past ``max_examples`` examples."""
    kept, seen = [], 0
    for batch in (b for b in batches if seen < max_examples):
        kept.append(batch)
        seen += int(np.sum(np.asarray(batch["valid"], bool)))
    return {
        key: {**dag_confidence(models[key], kept), "examples": seen}
        for key in dict.fromkeys(r["model"] for r in rows)
        if isinstance(getattr(models.get(key), "recipe", None), DAG)
    }


def samples(outputs, refs, batches, info, limit: int = 10) -> list[dict[str, str]]:
    """The first ``limit`` test examples where AT beam 4 and NAT length_pred differ."""
    if "at_beam4" not in outputs or "nat_length_pred" not in outputs:
        return []
    detok = info.tgt_vocab.detokenize
    sources = valid_rows(batches, "inputs")
    out = []
    for i, (a, n) in enumerate(zip(outputs["at_beam4"], outputs["nat_length_pred"], strict=True)):
        if a != n and len(out) < limit:
            source = info.src_vocab.decode(np.asarray(sources[i]).tolist())
            references = " / ".join(detok(r) for r in refs[i])
            out.append({"source": info.src_vocab.detokenize(source), "references": references,
                        "at_beam4": detok(a), "nat": detok(n)})  # fmt: skip
    return out


def attention_figure(models, batches, info, path: Path, max_len: int) -> Path | None:
    """Cross-attention (last decoder layer, mean over heads) of the first test example."""
    if "at" not in models or "nat" not in models:
        return None
    src = jnp.asarray(batches[0]["inputs"][:1])
    n_src = int(np.sum(np.asarray(src) != PAD))
    src_tokens = info.src_vocab.decode(np.asarray(src[0, :n_src]).tolist())
    at, nat = models["at"], models["nat"]
    hyp = np.asarray(at_decode(at, src, method="greedy", max_len=max_len))[0]
    n_out = int(np.argmax(hyp == EOS)) + 1 if (hyp == EOS).any() else len(hyp)
    tgt_in = jnp.asarray([[BOS, *hyp[: n_out - 1].tolist()]])
    _, at_maps = capture_cross_attention(at, at, src, tgt_in)
    out = nat_decode(nat, src, "length_pred", max_len=max_len)
    length = int(out.lengths[0])
    dec = jnp.where(jnp.arange(max_len)[None] < length, MASK, PAD).astype(jnp.int32)
    _, nat_maps = capture_cross_attention(nat, nat.decode, dec, nat.encode(src), src)
    if not at_maps or not nat_maps:
        return None
    label = lambda ids: info.tgt_vocab.decode([int(i) for i in ids]) + ["</s>"]
    at_w = np.asarray(at_maps[-1][0].mean(0))[:n_out, :n_src]
    nat_w = np.asarray(nat_maps[-1][0].mean(0))[:length, :n_src]
    nat_out = label(np.asarray(out.tokens[0, : length - 1]))
    maps = [
        ("AT greedy: cross-attention, last layer", at_w, label(hyp[: n_out - 1]), src_tokens),
        ("NAT length_pred: cross-attention, last layer", nat_w, nat_out, src_tokens),
    ]
    return plots.save(plots.attention_maps_figure(maps), path)


def _timing_row(row: dict[str, Any], passes: dict[str, list[float]], how: str) -> None:
    """A row's timing from ``side_by_side``: each figure the median over the passes, with
    its smallest and largest (``*_range``)."""
    columns = {"latency_ms_b1": "latency_ms_b1", "throughput_seq_s": "throughput_seq_s_b64"}
    for key, column in columns.items():
        row[column] = float(np.median(passes[key]))
        row[f"{column}_range"] = [min(passes[key]), max(passes[key])]
    row.update(timing_passes=len(passes["latency_ms_b1"]), timed=how)


def _results(ctx: _Run, rows, outputs, curves, times, info, passes) -> dict[str, Any]:
    """``results.json``: the rows, and what the report draws besides them."""
    config, by_name = ctx.config, {r["system"]: r for r in rows}
    # Speed ratios pass by pass (side_by_side), the median and the range; for a baseline timed
    # by its own module (no passes), the ratio of the medians.
    for base in (b for b in SPEED_BASES if b in by_name):
        for row in rows:
            if row["system"] in passes and base in passes:
                got = speed_ratios(passes, row["system"], base)
                for key, column in (("b1", "speedup_vs"), ("b64", "throughput_vs")):
                    row[f"{column}_{base}"] = got[key]
                    row[f"{column}_{base}_range"] = got[f"{key}_range"]
            else:
                row[f"speedup_vs_{base}"] = by_name[base]["latency_ms_b1"] / row["latency_ms_b1"]
                ratio = row["throughput_seq_s_b64"] / by_name[base]["throughput_seq_s_b64"]
                row[f"throughput_vs_{base}"] = ratio
    if "at_beam4" in outputs:
        for row in rows:
            same = zip(outputs[row["system"]], outputs["at_beam4"], strict=True)
            row["same_as_at_beam4"] = float(np.mean([h == b for h, b in same]))
    # WER points against the AT of the row's budget, example by example (a paired bootstrap)
    for row in rows:
        base = "at_8k_beam4" if row.get("ablation") else "at_beam4"
        if base in outputs and row["system"] != base:
            diff, ci = paired_wer_difference(
                outputs[row["system"]], outputs[base], ctx.refs,
                bootstrap_samples=config.bootstrap_samples, seed=config.seed,
            )  # fmt: skip
            row[f"wer_vs_{base}"], row[f"wer_vs_{base}_ci95"] = diff, list(ci)
    errors = {r["system"]: r.pop("length_errors") for r in rows if "length_errors" in r}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise FloatingPointError(f"system {row['system']}: {k} is {v}")
    at_method = str(config.at.get("decode_method", "greedy"))
    if at_method == "beam":
        at_method = f"beam {config.at.get('beam_size', 4)}"
    return {
        "task": config.task,
        "scale": config.get("scale", "full"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "machine": f"{os.cpu_count()} CPU cores, jax devices {jax.devices()}",
        "split": config.test_split,
        "recorded": str(config.get("recorded", "")),
        "writeup": str(config.get("writeup", "")),
        "eval_decoding": at_method,
        "eval_decode_examples": int(config.at.get("eval_decode_examples", 0)),
        "systems": rows,
        "agreement": agreement(outputs, rows),
        "dag_paths": dag_paths(ctx.models, ctx.batches, rows),
        "samples": samples(outputs, ctx.refs, ctx.batches, info),
        "validation_curves": curves,
        "training_time": times,
        # the models of the learning-curve figure: those of config.curve_models in the table
        "curve_models": [k for k in _names(config.get("curve_models", "")) if k in curves],
        "length_errors": {
            s: {str(e): n for e, n in sorted(Counter(v).items())} for s, v in errors.items()
        },
    }


def run(config: ml_collections.ConfigDict, workdir: str | Path) -> list[dict[str, Any]]:
    """Run the whole experiment; return the rows of ``results.json``."""
    workdir = Path(workdir)
    systems = _check(config, workdir)
    recorded.code_revision()  # the code this process runs, before any commit made meanwhile
    neural = [s for s in systems if s not in BASELINES]  # the JAX models' systems
    if config.get("train_only", ""):
        train_models(config, workdir, neural, only=config.train_only,
                     recorded_dir=str(config.get("recorded", "")))  # fmt: skip
        return []
    info = dataset_info(config.at.data)
    batches = _test_batches(config)
    refs = [[list(r) for r in options] for options in valid_rows(batches, "references")]
    taken, fresh = recorded.take(config, workdir, neural, refs)
    if taken and config.get("latency_lengths", ()):
        raise ValueError(
            "latency_lengths times trained models: recorded systems "
            f"({', '.join(taken)}) cannot be timed against output length"
        )
    models, steps = train_models(config, workdir, [s for s in neural if s not in taken],
                                 recorded_dir=str(config.get("recorded", "")))  # fmt: skip
    ctx = _Run(config, workdir, batches, refs, info.tgt_vocab, models, steps, taken, fresh)
    rows, outputs, curves, times, timings = [], {}, {}, {}, {}
    for name in systems:
        if name in BASELINES:  # phonetisaurus, timed by its module
            row, outputs[name] = wfst_baseline.baseline_row(config, workdir, batches, refs, info)
            rows.append(row)
            continue
        row, outputs[name], got, took, timings[name] = _system(ctx, name)
        rows.append(row)
        curves.update({k: v for k, v in got.items() if k not in curves})
        times.update({k: v for k, v in took.items() if k not in times})
    logging.info("timing %d systems side by side, %d passes", len(timings), config.timing_passes)
    passes = side_by_side(timings, int(config.timing_passes))
    for row in (r for r in rows if r["system"] in passes):
        _timing_row(row, passes[row["system"]], timings[row["system"]].how)
    results = _results(ctx, rows, outputs, curves, times, info, passes)
    if config.get("latency_lengths", ()):
        last = [s for s in neural if "@" not in s]  # the models' last checkpoints only
        results["latency_vs_length"] = measure_latency_vs_length(config, models, last, info)
    attention = attention_figure(models, batches, info, workdir / "attention_maps.png", ctx.max_len)
    results["attention_maps"] = attention is not None
    (workdir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    render(workdir)
    return rows
