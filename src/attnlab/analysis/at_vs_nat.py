"""The AT-versus-NAT experiment: train (or resume) the models, decode, score, report.

``run(config, workdir)``:

1. trains, or resumes, every model (``MODELS``) that a system of ``config.systems`` needs,
   each under ``DIR/<model>``: the AT ``Seq2Seq`` (``at``), a deep-shallow AT (``at_ds``),
   NATs (``NATSeq2Seq``) of matched size, one per recipe, and distilled NATs (``*_kd``,
   trained on the AT model's beam outputs of the training split);
2. decodes the test split with every system of ``config.systems``;
3. writes ``DIR/results.json`` (one object per system), ``DIR/report.md`` and the PNG plots.

Each step is resumable: training resumes from checkpoints, and the distilled data is written
atomically once. All figures come from this run, except, given ``config.recorded``, the
outputs of systems whose models trained in an earlier run on another machine
(``analysis.recorded``): those are read from the record, and timed beside the others on a
fresh model of the same config made to run the recorded decode.
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

from attnlab.analysis import recorded
from attnlab.analysis.distill import distilled_data_config
from attnlab.analysis.findings import validation_curves
from attnlab.analysis.latency import add_speedups, measure_latency_vs_length
from attnlab.analysis.report import attention_figure, write_report
from attnlab.analysis.scoring import error_kinds, score
from attnlab.analysis.systems import SYSTEMS, make_decoder, run_system, valid_rows
from attnlab.data import dataset_info, make_eval_batches
from attnlab.train import restore_model, train_and_evaluate
from attnlab.train.checkpoint import Checkpointer
from attnlab.train.restore import restore
from attnlab.train.workdir import check_writable, has_history, read_trained_config, write_config


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


# Every model the systems can use, in training order. Each is ``config.<key>``, an ordinary
# training config. A ``*_kd`` model trains on the AT model's beam outputs of the training
# split (sequence-level distillation, Kim & Rush 2016), so the AT model comes first.
MODELS = (
    "at",  # the AT Seq2Seq
    "at_ds",  # the deep-encoder, shallow-decoder AT (Kasai et al. 2021)
    "nat",  # the task's default NAT recipe (g2p: cmlm)
    "nat_eos",  # eos_canvas: no length head, decoded by eos_cut
    "nat_glat",  # vanilla with glancing (Qian et al. 2021)
    "nat_ctc",  # ctc (Libovicky & Helcl 2018)
    "nat_ctc_glat",  # ctc with glancing (Gu & Kong 2021)
    "nat_dag",  # DA-Transformer with glancing (Huang et al. 2022)
    "nat_kd",  # nat, distilled
    "nat_dag_kd",  # nat_dag, distilled
    "nat_ctc_kd",  # nat_ctc, distilled (the best one-pass NAT of the full g2p run)
)


def is_distilled(key: str) -> bool:
    return key.endswith("_kd")


def train_models(
    config: ml_collections.ConfigDict,
    workdir: Path,
    systems: list[str],
    only: str = "",
    recorded_dir: str = "",
) -> tuple[dict[str, nnx.Module], dict[str, int]]:
    """Train or resume every model the systems need; return them restored, and their steps.

    ``only`` trains (or resumes) just that model, so that the models can be trained by
    parallel processes (a ``*_kd`` model restores the finished AT teacher and waits for
    nothing; the first one to need them writes the distilled data). With ``recorded_dir``
    the teacher's outputs are recorded there when it distills, and read from there when the
    teacher has no checkpoint in the workdir (``analysis.recorded``).
    """
    needed = {key for s in systems for key in (SYSTEMS[s].model, SYSTEMS[s].rescorer) if key}
    if only:
        if only not in MODELS:
            raise ValueError(f"unknown train_only model {only!r}; valid: {', '.join(MODELS)}")
        needed = {only}
    recorded_teacher = (
        bool(recorded_dir)
        and not has_history(workdir / "at")
        and (Path(recorded_dir) / recorded.PAIRS_FILE).exists()
    )
    if any(is_distilled(key) for key in needed) and not recorded_teacher:
        needed.add("at")  # the teacher
    average = int(config.get("average_checkpoints", 1))
    models: dict[str, nnx.Module] = {}
    steps: dict[str, int] = {}
    distilled = None
    for key in (k for k in MODELS if k in needed):
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


def redraw_attention_maps(run_dir: str | Path, path: str | Path) -> Path | None:
    """Draw a finished run's cross-attention figure again, from its trained AT and NAT (the
    checkpoints averaged as the run averaged them) and its first test example, without
    decoding or timing anything; None if the run has no AT or no NAT."""
    run_dir = Path(run_dir)
    config = ml_collections.ConfigDict(json.loads((run_dir / "config.json").read_text()))
    average = int(config.get("average_checkpoints", 1))
    if not all((run_dir / key / "config.json").exists() for key in ("at", "nat")):
        return None
    models = {k: restore_model(run_dir / k, average_last=average)[0] for k in ("at", "nat")}
    batches = _test_batches(config)
    max_len = int(batches[0]["targets"].shape[1])
    info = dataset_info(config.at.data)
    return attention_figure(models, batches, info, Path(path), max_len)


def run(config: ml_collections.ConfigDict, workdir: str | Path) -> list[dict[str, Any]]:
    """Run the whole experiment; return the rows written to ``results.json``."""
    workdir = Path(workdir)
    check_writable(workdir)
    writeup = str(config.get("writeup", ""))
    if writeup and not Path(writeup).is_file():
        raise FileNotFoundError(f"writeup {writeup}: no such file (config.writeup; '' for none)")
    systems = parse_systems(config.systems)
    if not config.distill:
        systems = [s for s in systems if not is_distilled(SYSTEMS[s].model)]
    write_config(workdir, config)  # each model's own workdir checks its training config
    recorded_dir = str(config.get("recorded", ""))
    if config.get("train_only", ""):
        train_models(config, workdir, systems, only=config.train_only, recorded_dir=recorded_dir)
        return []

    info = dataset_info(config.at.data)
    vocab = info.tgt_vocab
    batches = _test_batches(config)
    refs = [[list(r) for r in options] for options in valid_rows(batches, "references")]
    taken, fresh = recorded.take(config, workdir, systems, refs)
    if taken and config.get("latency_lengths", ()):
        raise ValueError(
            "latency_lengths times trained models: recorded systems "
            f"({', '.join(taken)}) cannot be timed against output length"
        )
    models, steps = train_models(
        config, workdir, [s for s in systems if s not in taken], recorded_dir=recorded_dir
    )
    max_len = int(batches[0]["targets"].shape[1])
    rows, outputs, curves = [], {}, {}
    for name in systems:
        key, method, rescorer = SYSTEMS[name]
        record = taken.get(name)
        if record is not None:
            logging.info("%s: outputs recorded; timing a fresh model on their decode", name)
            result = recorded.timed(
                record,
                fresh[key],
                batches,
                max_len=max_len,
                length_penalty=config.at.length_penalty,
                latency_examples=config.latency_examples,
                rescorer=fresh[rescorer] if rescorer else None,
            )
            hyps, chosen, step = record.hyps, record.lengths, record.step
            params, curve = record.params, record.curve
        else:
            logging.info("decoding the %s split with %s", config.test_split, name)
            decode = make_decoder(
                models[key],
                method,
                max_len=max_len,
                length_penalty=config.at.length_penalty,
                rescorer=models[rescorer] if rescorer else None,
            )
            result = run_system(name, decode, batches, latency_examples=config.latency_examples)
            hyps, chosen, step = [vocab.decode(h) for h in result.hyps], result.lengths, steps[key]
            # A rescored system runs two models: it holds both models' weights.
            params = count_params(models[key])
            params += count_params(models[rescorer]) if rescorer else 0
            curve = validation_curves(workdir, [key]).get(key, [])
            if recorded_dir:
                made = recorded.record_of(
                    result,
                    hyps,
                    model=key,
                    decoding=method,
                    split=config.test_split,
                    references_digest=recorded.references_digest(refs),
                    step=step,
                    params=params,
                    config=read_trained_config(workdir / key).to_dict(),
                    curve=curve,
                    candidates=recorded.candidate_lengths(
                        models[key], method, batches, max_len=max_len, chosen=chosen
                    ),
                    rescorer_config=(
                        read_trained_config(workdir / rescorer).to_dict() if rescorer else None
                    ),
                )
                recorded.save(recorded_dir, made)
        outputs[name] = hyps
        row = {"system": name, "model": key, "decoding": method}
        if rescorer:
            row["rescored_by"] = rescorer
        row.update(
            score(
                hyps,
                refs,
                detokenize=vocab.detokenize,
                lengths=chosen,
                bootstrap_samples=config.bootstrap_samples,
                seed=config.seed,
            )
        )
        row.update(error_kinds(hyps, refs))
        row.update(
            latency_ms_b1=result.latency_ms_b1,
            throughput_seq_s_b64=result.throughput_seq_s,
            params=params,
            step=step,
            outputs="recorded" if record is not None else "decoded",
        )
        rows.append(row)
        if curve:
            curves.setdefault(key, curve)
        if rescorer and record is None:
            curves.update(validation_curves(workdir, [rescorer]))
    add_speedups(rows)
    if "at_beam4" in outputs:
        for row in rows:
            same = zip(outputs[row["system"]], outputs["at_beam4"], strict=True)
            row["same_as_at_beam4"] = float(np.mean([h == b for h, b in same]))
    by_length = []
    if config.get("latency_lengths", ()):
        by_length = measure_latency_vs_length(config, models, systems, info)
        (workdir / "latency_vs_length.json").write_text(json.dumps(by_length, indent=1) + "\n")
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
        by_length=by_length,
        curves=curves,
    )
    return rows
