r"""The ``phonetisaurus`` row of the AT-versus-NAT table: Phonetisaurus, the joint-sequence WFST
G2P (``attnlab.baselines.phonetisaurus``), trained on the training split, its test outputs
scored by ``analysis.scoring`` like every other system's. Its outputs are recorded like a neural
system's (``analysis.recorded``), with its training time and latency, so a later run reports it
from the record without retraining (docs/recorded_outputs.md).
"""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.analysis import recorded
from attnlab.analysis.scoring import error_kinds, score
from attnlab.analysis.systems import valid_rows
from attnlab.baselines.phonetisaurus import (
    BUDGET,
    DECODE,
    HOW_TIMED,
    NOTE,
    SYSTEM,
    TRAIN,
    VERSION,
    Trained,
    batch1_latency,
    decode,
    lexicon_digest,
    train,
    training_lexicon,
)


@dataclass
class WfstRecord(recorded.Record):
    """A ``Record`` with what stands for a neural model's step, and its timing (a later run
    cannot time it again without the model)."""

    budget: str = BUDGET
    timing: dict[str, Any] = field(default_factory=dict)


def load(directory: str | os.PathLike, settings: dict[str, Any], split: str, refs) -> Any:
    """``DIR/phonetisaurus.json.gz`` (None if absent), checked against this run's settings
    (but their data config, which names a machine's paths), split and references."""
    path = Path(directory) / f"{SYSTEM}.json.gz"
    if not path.exists():
        return None
    try:
        record = WfstRecord(**json.loads(gzip.decompress(path.read_bytes())))
    except (OSError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"recorded outputs {path} are unreadable ({err}); remove them") from None
    changed = [k for k in settings if k != "data" and record.config.get(k) != settings[k]]
    if changed:
        raise ValueError(f"recorded outputs {path} have another {changed[0]}; remove them")
    if record.split != split or record.references_digest != recorded.references_digest(refs):
        raise ValueError(f"recorded outputs {path} are of another split or other references")
    return record


def make_record(config, trained: Trained, words, vocab, refs, settings) -> WfstRecord:
    """Decode ``words`` (a phoneme outside ``vocab`` becomes ``<unk>``) and time it: the
    batch call's throughput and the single-word calls' latency."""
    start = time.perf_counter()
    phonemes = decode(trained.model, words)
    throughput = len(words) / (time.perf_counter() - start)
    timing = {"train_s": trained.train_s, "throughput_seq_s": throughput}
    timing.update(batch1_latency(trained.model, words[: max(int(config.latency_examples), 1)]))
    timing.update(batch_words=len(words), how=HOW_TIMED, machine=f"{os.cpu_count()} CPU cores")
    hyps = [vocab.decode(vocab.encode(p)) for p in phonemes]
    fields = dict(system=SYSTEM, model=SYSTEM, decoding="wfst 1-best", split=config.test_split)
    fields.update(references_digest=recorded.references_digest(refs), step=0, params=trained.params)
    fields.update(config=settings, curve=[], hyps=hyps, lengths=None, steps=None)
    fields.update(revision=recorded.code_revision())
    return WfstRecord(**fields, output_lengths=[len(h) + 1 for h in hyps], timing=timing)


def baseline_row(config, workdir: Path, batches, refs, info) -> tuple[dict[str, Any], list]:
    """The ``phonetisaurus`` row of the AT-vs-NAT table and its outputs: trained (or reused) in
    ``workdir/phonetisaurus`` and decoded, or, where that holds no model, read from
    ``config.recorded``; recorded there when it was decoded."""
    lexicon = training_lexicon(config.at.data)
    settings = {
        "tool": f"phonetisaurus=={VERSION}",
        "train": " ".join(TRAIN),
        "decode": " ".join(DECODE),
        "lexicon_sha1": lexicon_digest(lexicon),
        "lexicon_entries": len(lexicon),
        "data": config.at.data.to_dict(),
    }
    directory, store = workdir / SYSTEM, str(config.get("recorded", ""))
    record = None
    if store and not (directory / "trained.json").exists():
        record = load(store, settings, config.test_split, refs)
    source = "recorded" if record else "decoded"
    if record is None:
        words = [info.src_vocab.decode_text(ids) for ids in valid_rows(batches, "inputs")]
        record = make_record(
            config, train(lexicon, directory), words, info.tgt_vocab, refs, settings
        )
        if store:
            recorded.save(store, record)
    row: dict[str, Any] = {"system": SYSTEM, "model": SYSTEM, "decoding": record.decoding}
    stats = dict(bootstrap_samples=config.bootstrap_samples, seed=config.seed)
    row.update(score(record.hyps, refs, detokenize=info.tgt_vocab.detokenize, **stats))
    row.update(error_kinds(record.hyps, refs))
    timing = record.timing
    row.update({k: timing[k] for k in ("latency_ms_b1", "latency_ms_b1_quartiles", "train_s")})
    row.update(throughput_seq_s_b64=timing["throughput_seq_s"], params=record.params)  # one call
    row.update(params_note="n-gram weights")  # the joint n-gram model's, not a network's
    row.update(budget=record.budget, timing_note=NOTE, timed=timing["how"], outputs=source)
    row.update(one_pass=False)
    return row, record.hyps
