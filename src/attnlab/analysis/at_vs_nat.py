"""The AT-versus-NAT experiment: train (or resume) the models, decode, score, report.

``run(config, workdir)``:

1. trains, or resumes, an AT ``Seq2Seq`` under ``DIR/at``, a NAT ``NATSeq2Seq`` of matched size
   under ``DIR/nat``, and, when a system needs them, the eos_cut NAT under ``DIR/nat_eos``
   (trained on the whole canvas: targets, EOS, then PAD) and the distilled NAT under
   ``DIR/nat_kd`` (trained on the AT model's beam outputs of the training split);
2. decodes the test split with every system of ``config.systems``;
3. writes ``DIR/results.json`` (one object per system), ``DIR/report.md`` and the PNG plots.

Each step is resumable: training resumes from checkpoints, and the distilled data is written
atomically once. All figures come from this run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from attnlab.analysis.distill import distilled_data_config
from attnlab.analysis.report import write_report
from attnlab.analysis.scoring import score
from attnlab.analysis.systems import SYSTEMS, make_decoder, run_system, valid_rows
from attnlab.data import dataset_info, make_eval_batches
from attnlab.train import restore_model, train_and_evaluate
from attnlab.train.checkpoint import Checkpointer
from attnlab.train.workdir import check_writable, write_config


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
    """``"at_greedy,nat_length_pred"`` -> names, refusing unknown ones with the valid list."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown or not names:
        raise ValueError(
            f"unknown system {unknown[0] if unknown else spec!r}; valid: {', '.join(SYSTEMS)}"
        )
    return names


def count_params(model: nnx.Module) -> int:
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


MODELS = ("at", "nat", "nat_eos", "nat_kd")


def train_models(
    config: ml_collections.ConfigDict, workdir: Path, systems: list[str], only: str = ""
) -> dict[str, nnx.Module]:
    """Train or resume every model the systems need; return them restored.

    ``only`` trains (or resumes) just that model, so that the models can be trained by
    parallel processes (``nat_kd`` waits for nothing: it restores the finished AT teacher).
    """
    needed = {key for s in systems for key in (SYSTEMS[s].model, SYSTEMS[s].rescorer) if key}
    if only:
        if only not in MODELS:
            raise ValueError(f"unknown train_only model {only!r}; valid: {', '.join(MODELS)}")
        needed = {only}
    average = int(config.get("average_checkpoints", 1))
    models: dict[str, nnx.Module] = {}
    for key in ("at", "nat", "nat_eos"):
        if key in needed or (key == "at" and "nat_kd" in needed):
            if key == "at" and only == "nat_kd":
                _check_finished(config.at, workdir / key)
            else:
                logging.info("training %s in %s", key, workdir / key)
                _train(config[key], workdir / key)
            models[key] = restore_model(workdir / key, average_last=average)[0]
    if "nat_kd" in needed:
        kd = ml_collections.ConfigDict(config.nat_kd.to_dict())
        kd.data = distilled_data_config(
            models["at"],
            config.at.data,
            workdir / "distilled",
            beam_size=config.distill_beam_size,
            batch_size=config.distill_batch_size,
            length_penalty=config.at.length_penalty,
        )
        logging.info("training nat_kd in %s", workdir / "nat_kd")
        _train(kd, workdir / "nat_kd")
        models["nat_kd"] = restore_model(workdir / "nat_kd", average_last=average)[0]
    return models


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
    batches = list(
        make_eval_batches(config.at.data, config.test_split, batch_size=config.eval_batch_size)
    )
    limit = int(config.max_test_examples)
    if limit > 0:  # keep whole batches up to the limit, mark the rest of the last one invalid
        kept, seen = [], 0
        for batch in batches:
            if seen >= limit:
                break
            valid = np.asarray(batch["valid"], bool).copy()
            take = np.cumsum(valid) <= limit - seen
            valid &= take
            seen += int(valid.sum())
            kept.append({**batch, "valid": valid})
        batches = kept
    return batches


def run(config: ml_collections.ConfigDict, workdir: str | Path) -> list[dict[str, Any]]:
    """Run the whole experiment; return the rows written to ``results.json``."""
    workdir = Path(workdir)
    check_writable(workdir)
    systems = parse_systems(config.systems)
    if not config.distill:
        systems = [s for s in systems if SYSTEMS[s].model != "nat_kd"]
    write_config(workdir, config)  # each model's own workdir checks its training config
    models = train_models(config, workdir, systems, only=config.get("train_only", ""))
    if config.get("train_only", ""):
        return []

    info = dataset_info(config.at.data)
    vocab = info.tgt_vocab
    batches = _test_batches(config)
    refs = [[list(r) for r in options] for options in valid_rows(batches, "references")]
    max_len = int(batches[0]["targets"].shape[1])
    rows, outputs = [], {}
    for name in systems:
        key, method, rescorer = SYSTEMS[name]
        logging.info("decoding the %s split with %s", config.test_split, name)
        decode = make_decoder(
            models[key],
            method,
            max_len=max_len,
            length_penalty=config.at.length_penalty,
            rescorer=models[rescorer] if rescorer else None,
        )
        result = run_system(name, decode, batches, latency_examples=config.latency_examples)
        hyps = [vocab.decode(h) for h in result.hyps]
        outputs[name] = hyps
        row = {"system": name, "model": key, "decoding": method}
        if rescorer:
            row["rescored_by"] = rescorer
        row.update(
            score(
                hyps,
                refs,
                detokenize=vocab.detokenize,
                lengths=result.lengths,
                bootstrap_samples=config.bootstrap_samples,
                seed=config.seed,
            )
        )
        row.update(
            latency_ms_b1=result.latency_ms_b1,
            throughput_seq_s_b64=result.throughput_seq_s,
            # A rescored system runs two models: it holds both models' weights.
            params=count_params(models[key]) + (count_params(models[rescorer]) if rescorer else 0),
        )
        rows.append(row)
    _add_speedups(rows)
    length_errors = {r["system"]: r.pop("length_errors") for r in rows if "length_errors" in r}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise FloatingPointError(f"system {row['system']}: {k} is {v}")
    (workdir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    write_report(
        config,
        workdir,
        rows,
        outputs=outputs,
        refs=refs,
        length_errors=length_errors,
        batches=batches,
        models=models,
        info=info,
    )
    return rows


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    by_name = {r["system"]: r for r in rows}
    for base, key in (("at_greedy", "speedup_vs_at_greedy"), ("at_beam4", "speedup_vs_at_beam4")):
        if base not in by_name:
            continue
        for row in rows:
            row[key] = by_name[base]["latency_ms_b1"] / row["latency_ms_b1"]
