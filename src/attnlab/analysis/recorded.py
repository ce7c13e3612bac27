"""Recorded outputs: what a run's systems produced, so that a later run on another machine can
report them without the checkpoints (docs/recorded_outputs.md).

Given ``config.recorded = DIR``, a run writes each decoded system's test outputs and how they
were made (``DIR/<system>.json.gz``, ``save``) and a distilling teacher's training outputs
(``train.distill.save_pairs``). A later run takes a system from DIR when its model has no
checkpoint (``take``, which checks config, split and references), and times it on a fresh
model of the same config made to run the recorded decode (``timed``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import subprocess
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from flax import nnx

from attnlab.analysis.latency import timing_decoder
from attnlab.analysis.systems import SYSTEMS, Timing, at_beam, timing_of
from attnlab.decode.compiled import jit_model, trim_source
from attnlab.nat import parse_strategy
from attnlab.nat.vanilla import top_lengths
from attnlab.train.distill import write_gzip_atomic
from attnlab.train.resolve import build, resolve_config
from attnlab.train.workdir import config_changes, has_history


@dataclass
class Record:
    """One system's outputs on the test split, and what made them."""

    system: str
    model: str  # key of analysis.at_vs_nat.MODELS
    decoding: str
    split: str
    references_digest: str  # sha1 of the references, in order
    step: int  # the (newest averaged) checkpoint's step
    params: int
    config: dict[str, Any]  # the model's resolved training config (its config.json)
    curve: list[list[float]]  # [[step, validation WER], ...] during training
    hyps: list[list[str]]  # output tokens, one list per test example
    lengths: list[int] | None  # NAT: the chosen length of each output, counting the EOS
    output_lengths: list[int]  # ids per output plus the EOS
    steps: list[int] | None  # AT: the decoder steps of each output's search (its cost)
    # length_beam:K: the K lengths decoded for each example (candidate_lengths)
    candidates: list[list[int]] | None = None
    rescorer_config: dict[str, Any] | None = None  # the rescoring AT's config, where one rescored
    # [[step, seconds of training up to it], ...] at the curve's steps (analysis.training_time)
    training_time: list[list[float]] | None = None
    # the git commit of the code that recorded it (``code_revision``), ``+changes`` when src/ or
    # experiments/ (but its results) differed from it; None where unknown (or older records)
    revision: str | None = None


@functools.cache
def code_revision() -> str | None:
    """``revision_of`` this checkout, read once per process (``run`` asks at its start, so a
    commit made while a model trains does not relabel it)."""
    return revision_of(Path(__file__).resolve().parents[3])


def revision_of(root: Path) -> str | None:
    """The git commit of the checkout at ``root``, with ``+changes`` when ``src/`` or
    ``experiments/`` (its results, which runs write, excepted) have uncommitted changes; None
    outside a git checkout."""
    git = lambda *args: subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()
    code = ("src", "experiments", ":(exclude)experiments/results")
    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *code)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changed else "")


def split_step(name: str) -> tuple[str, int | None]:
    """``at_beam4@8000`` -> ``("at_beam4", 8000)``: the system decoded from its model's
    checkpoint of that step (kept by ``keep_checkpoint_steps``); ``at_beam4`` ->
    ``("at_beam4", None)``, the model's last checkpoint."""
    base, sep, step = name.partition("@")
    return base, (int(step) if sep else None)


def references_digest(refs: Sequence[Any]) -> str:
    return hashlib.sha1(json.dumps(refs).encode()).hexdigest()


def save(directory: str | os.PathLike, record: Record) -> Path:
    path = Path(directory) / f"{record.system}.json.gz"
    write_gzip_atomic(path, (json.dumps(asdict(record), separators=(",", ":")) + "\n").encode())
    return path


def _check_config(what: str, recorded: dict[str, Any], current: ml_collections.ConfigDict) -> None:
    # Not the data: a distilled model's is its workdir's copy of the teacher's outputs, and the
    # references digest checks the test data.
    without_data = lambda c: {k: v for k, v in c.items() if k != "data"}
    current = ml_collections.ConfigDict(without_data(current.to_dict()))
    changes = config_changes(without_data(recorded), current)
    if changes:
        raise ValueError(
            f"{what} trained with another config: {changes[0]}; remove them, or give that config"
        )


def load(
    directory: str | os.PathLike,
    system: str,
    *,
    model_config: ml_collections.ConfigDict,
    split: str,
    refs: Sequence[Any],
) -> Record | None:
    """``DIR/<system>.json.gz`` if it is there (None if not), checked against this run's
    resolved training config of the system's model, test split and references."""
    path = Path(directory) / f"{system}.json.gz"
    if not path.exists():
        return None
    try:
        record = Record(**json.loads(gzip.decompress(path.read_bytes())))
    except (OSError, EOFError, zlib.error, ValueError, TypeError) as err:
        raise ValueError(f"recorded outputs {path} are unreadable ({err}); remove them") from None
    _check_config(f"recorded outputs {path} come from a model", record.config, model_config)
    if record.split != split or len(record.hyps) != len(refs):
        raise ValueError(
            f"recorded outputs {path} are of {len(record.hyps)} examples of split "
            f"{record.split!r}; this run decodes {len(refs)} of {split!r}"
        )
    if record.references_digest != references_digest(refs):
        raise ValueError(f"recorded outputs {path} were scored against other references")
    return record


def timing_method(method: str) -> str:
    """The decoding method that costs what ``method`` cost, on an untrained model given the
    recorded output lengths (a NAT), candidate lengths (``length_beam``) or decoder steps (an
    AT): ``length_pred`` becomes ``oracle_length`` (also under ``mask_predict``); an AT method
    and ``length_beam`` stay (the search runs the recorded steps, the beam the recorded
    lengths); the others decode a canvas fixed by the source."""
    if at_beam(method):
        return method
    strategy = parse_strategy(method)
    if strategy.name != "length_pred":
        return method
    if strategy.iterations > 1:
        return f"oracle_length+mask_predict:{strategy.iterations}"
    return "oracle_length"


def take(
    config: ml_collections.ConfigDict, workdir: Path, systems: Sequence[str], refs: Sequence[Any]
) -> tuple[dict[str, Record], dict[str, nnx.Module]]:
    """The systems of ``config.recorded`` whose models have no checkpoint in the workdir and
    are needed by no other system (their outputs come from the record), and a freshly
    initialized model of each of their models' configs, to time them on."""
    directory = config.get("recorded", "")
    if not directory:
        return {}, {}
    taken, resolved_config = {}, functools.cache(lambda key: resolve_config(config[key])[0])
    system = lambda name: SYSTEMS[split_step(name)[0]]
    for name in systems:
        key, method, rescorer = system(name)
        if has_history(workdir / key) or (rescorer and has_history(workdir / rescorer)):
            continue
        record = load(
            directory, name, model_config=resolved_config(key), split=config.test_split, refs=refs
        )
        if record is None:
            continue
        step = split_step(name)[1]
        if step is not None and record.step != step:
            raise ValueError(f"recorded outputs of {name} are of step {record.step}, not {step}")
        timing_method(method)  # refuse what cannot be timed, before anything trains
        if _length_beam(method) and record.candidates is None:
            raise ValueError(
                f"recorded outputs of {name} lack the candidate lengths that time a "
                f"length_beam decode; remove {Path(directory) / name}.json.gz and decode it again"
            )
        if rescorer:
            what = f"recorded outputs of {name} were rescored by an AT"
            _check_config(what, record.rescorer_config or {}, resolved_config(rescorer))
        taken[name] = record
    trained = {k for s in systems if s not in taken for k in system(s)[::2] if k}
    taken = {name: r for name, r in taken.items() if r.model not in trained}
    needed = {k for name in taken for k in system(name)[::2] if k}
    fresh = {k: build(resolved_config(k))[0] for k in sorted(needed)}
    return taken, fresh


def timed(
    record: Record, model: nnx.Module, batches, *, latency_examples: int, **settings
) -> Timing:
    """The ``Timing`` of ``record``'s system on ``model``, a fresh model of its config, made to
    run the recorded decode; ``settings``: ``max_len``, ``length_penalty`` and, where an AT
    rescored the system, ``rescorer``, a fresh AT."""
    method = timing_method(record.decoding)
    decode = timing_decoder(model, method, forced=True, **settings)
    given = next(n for n in (record.steps, record.candidates, record.lengths) if n is not None)
    what = (
        "decoder steps" if record.steps is not None
        else "candidate lengths" if record.candidates is not None
        else "output lengths" if method.startswith("oracle_length")
        else ""  # a canvas fixed by the source: nothing to force
    )  # fmt: skip
    how = f"fresh model, forced to the recorded {what}" if what else "fresh model"
    return timing_of(decode, batches, latency_examples=latency_examples, how=how, lengths=given)


def _length_beam(method: str) -> int:
    """K of a ``length_beam:K`` decoding, 0 for any other."""
    if at_beam(method):
        return 0
    strategy = parse_strategy(method)
    return strategy.beam if strategy.name == "length_beam" else 0


def _top_lengths(model: nnx.Module, src: Any, *, canvas: int, k: int) -> Any:
    return top_lengths(model, model.encode(src), src, canvas, k)[0]


def candidate_lengths(
    model: nnx.Module,
    method: str,
    batches: Sequence[dict[str, Any]],
    *,
    max_len: int,
    chosen: Sequence[int] | None,
) -> list[list[int]] | None:
    """For a ``length_beam:K`` decode (None for any other), the K lengths it decoded for each
    valid example of ``batches``, checked against the lengths it ``chosen``."""
    k = _length_beam(method)
    if not k:
        return None
    out: list[list[int]] = []
    run = jit_model(_top_lengths, model, canvas=int(max_len), k=k)
    for batch in batches:
        lengths = np.asarray(run(trim_source(batch["inputs"])))
        out.extend(row.tolist() for row in lengths[np.asarray(batch["valid"], bool)])
    if chosen is None or any(n not in c for n, c in zip(chosen, out, strict=True)):
        raise ValueError(f"{method}: a chosen length is not among its candidate lengths")
    return out
