"""Recorded outputs: what a run's trained models produced, kept so that a later run on another
machine can report them without the checkpoints.

The full g2p run of the AT-vs-NAT experiment trains eleven models, more machine time than one
session has, and a session's machine may not keep the last one's files. Checkpoints are not
committed; outputs are. Given ``config.recorded = DIR``, a run writes into DIR, for every
system it decodes, the test-split outputs and how they were made (``<system>.json.gz``), and,
when it distills, the teacher's outputs on the training split (``distilled.tsv.gz``). A later
run given the same DIR

- takes a system's outputs from DIR when the system's model has no checkpoint in its workdir,
  and does not train that model: every quality figure is computed from the outputs and the
  references, as for a system decoded in the run;
- times such a system, side by side with the others, with a freshly initialized model of the
  same config made to run the recorded decode (``timing_method``, ``timed``): an AT search
  forced to run the recorded number of decoder steps (its EOS forced there: greedy's steps are
  its output length; a beam search's can exceed it, as its finished set may fill before the
  search can stop), a ``length_pred`` NAT given the recorded length (as ``oracle_length``).
  The cost of a decode depends on the architecture and on the steps or lengths, not on the
  weights: CTC, DAG and ``eos_cut`` decode a canvas fixed by the source. ``length_beam``
  weighs several lengths of its model's choosing, so it cannot be timed this way and is
  refused;
- trains a distilled (``*_kd``) model on DIR's teacher outputs when the teacher has no
  checkpoint in the workdir.

A record names its model's training config, the test split, its number of examples and a
digest of the references; a run whose config or data differ refuses it, naming the first
difference. Records are gzipped JSON (outputs as token lists) and a gzipped TSV.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ml_collections
from flax import nnx

from attnlab.analysis.systems import SYSTEMS, SystemRun, make_decoder, run_system
from attnlab.decode.nat import parse_strategy
from attnlab.train.resolve import build, resolve_config
from attnlab.train.workdir import config_changes, has_history

PAIRS_FILE = "distilled.tsv.gz"


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


def references_digest(refs: Sequence[Any]) -> str:
    return hashlib.sha1(json.dumps(refs).encode()).hexdigest()


def _write_gzip_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    # no name and mtime=0 in the header: the same outputs give the same bytes, so a re-run
    # changes no committed file
    tmp.write_bytes(gzip.compress(data, mtime=0))
    os.replace(tmp, path)


def save(directory: str | os.PathLike, record: Record) -> Path:
    path = Path(directory) / f"{record.system}.json.gz"
    _write_gzip_atomic(path, (json.dumps(asdict(record), separators=(",", ":")) + "\n").encode())
    return path


def _without_data(config: dict[str, Any]) -> dict[str, Any]:
    # A distilled model's data is its workdir's copy of the teacher's outputs: where it lies
    # says nothing about the model, and the references digest checks the test data.
    return {k: v for k, v in config.items() if k != "data"}


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
    current = ml_collections.ConfigDict(_without_data(model_config.to_dict()))
    changes = config_changes(_without_data(record.config), current)
    if changes:
        raise ValueError(
            f"recorded outputs {path} come from a model trained with another config: "
            f"{changes[0]}; remove them, or give that config"
        )
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
    recorded output lengths (a NAT) or decoder steps (an AT): ``length_pred`` becomes
    ``oracle_length`` (also under ``mask_predict``); an AT method stays (its search is forced
    to run the recorded steps); the others decode a canvas fixed by the source.
    ``length_beam`` is refused (module docstring)."""
    if method == "greedy" or method.startswith("beam:"):
        return method
    strategy = parse_strategy(method)
    if strategy.length == "length_beam":
        raise ValueError(
            f"decoding {method!r} cannot be timed from recorded outputs (length_beam weighs "
            "lengths of its trained model's choosing); train its model in the workdir"
        )
    if strategy.length != "length_pred":
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
    taken, resolved = {}, {}
    for name in systems:
        key, method, _ = SYSTEMS[name]
        if has_history(workdir / key):
            continue
        if key not in resolved:
            resolved[key] = resolve_config(config[key])[0]
        record = load(
            directory, name, model_config=resolved[key], split=config.test_split, refs=refs
        )
        if record is not None:
            timing_method(method)  # refuse what cannot be timed, before anything trains
            taken[name] = record
    trained = {k for s in systems if s not in taken for k in SYSTEMS[s][::2] if k}
    taken = {name: r for name, r in taken.items() if r.model not in trained}
    fresh = {r.model: build(resolved[r.model])[0] for r in taken.values()}
    return taken, fresh


def timed(
    record: Record,
    model: nnx.Module,
    batches: Sequence[dict[str, Any]],
    *,
    max_len: int,
    length_penalty: float,
    latency_examples: int,
) -> SystemRun:
    """``run_system`` of ``record``'s system on ``model``, a fresh model of its config, made to
    run the recorded decode: its throughput and latency are the figures to report."""
    decode = make_decoder(
        model,
        timing_method(record.decoding),
        max_len=max_len,
        length_penalty=length_penalty,
        force_lengths=True,
    )
    lengths = record.lengths if record.steps is None else record.steps
    return run_system(
        record.system, decode, batches, latency_examples=latency_examples, lengths=lengths
    )


def record_of(run: SystemRun, hyps: list[list[str]], **fields: Any) -> Record:
    """The record of a system decoded in this run: ``run``'s outputs (``hyps``, as tokens) and
    ``fields``, the other fields of ``Record``."""
    return Record(
        system=run.name,
        hyps=hyps,
        lengths=run.lengths,
        output_lengths=[len(h) + 1 for h in run.hyps],
        steps=run.steps,
        **fields,
    )


def save_pairs(directory: str | os.PathLike, pairs: Iterable[tuple[list[str], list[str]]]) -> Path:
    """The teacher's outputs on the training split: ``source tokens<TAB>output tokens``."""
    lines = [" ".join(src) + "\t" + " ".join(tgt) + "\n" for src, tgt in pairs]
    path = Path(directory) / PAIRS_FILE
    _write_gzip_atomic(path, "".join(lines).encode())
    return path


def load_pairs(directory: str | os.PathLike) -> list[tuple[list[str], list[str]]] | None:
    """What ``save_pairs`` wrote, or None where DIR has none."""
    path = Path(directory) / PAIRS_FILE
    if not path.exists():
        return None
    try:
        text = gzip.decompress(path.read_bytes()).decode()
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise ValueError(f"recorded teacher outputs {path} are unreadable ({err})") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        src, sep, tgt = line.partition("\t")
        if not sep or not src or not tgt:
            raise ValueError(f"{path}, line {number}: expected 'source<TAB>output', got {line!r}")
        pairs.append((src.split(" "), tgt.split(" ")))
    return pairs
