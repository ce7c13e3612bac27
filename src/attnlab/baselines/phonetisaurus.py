r"""Phonetisaurus, the joint-sequence WFST G2P (Novak, Minematsu & Hirose 2016): the classic
baseline of G2P papers, trained and decoded by its own binaries, outside JAX.

It trains with its pip package's defaults (``phonetisaurus.train`` runs ``phonetisaurus-train
--seq2_del``: EM alignment of letter and phoneme chunks of up to 2, an 8-gram joint model by
mitlm, compiled into a WFST) on the training split as our models read it (the same encoder,
vocabularies and over-long filter, ``training_lexicon``), and decodes a word list 1-best in one
``phonetisaurus-g2pfst`` process, on one CPU core (``decode``). Its row of the AT-versus-NAT
table, scored and recorded like a neural system's, is ``analysis.wfst_baseline``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.data.datasets import prepare
from attnlab.data.encode import Encoder
from attnlab.data.sources import iter_records

SYSTEM = "phonetisaurus"
VERSION = "0.3.0"  # requirements.lock
TRAIN = ("phonetisaurus-train", "--seq2_del")  # what the package's train() runs
DECODE = ("phonetisaurus-g2pfst", "--nbest=1")
BUDGET = "phonetisaurus defaults (not step-trained)"
NOTE = "WFST (Phonetisaurus), CPU, not JAX; b=1: a process per word"
HOW_TIMED = (  # batch 1; the throughput is of one process decoding the whole split
    "one phonetisaurus-g2pfst process per word (--word=W): every call pays the process "
    "start-up and the model's load"
)

Lexicon = list[tuple[str, list[str]]]  # (word, phonemes), one per training example


def environment() -> dict[str, str]:
    """PATH and LD_LIBRARY_PATH that reach the package's binaries, each checked."""
    try:
        import phonetisaurus
    except ImportError:
        raise ValueError(f"{SYSTEM} needs pip install phonetisaurus=={VERSION}") from None
    env = phonetisaurus.guess_environment()
    for tool in (TRAIN[0], DECODE[0], "phonetisaurus-align", "estimate-ngram"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise ValueError(
                f"{SYSTEM}: binary {tool} not found on {env['PATH'].split(':')[0]}; "
                f"pip install phonetisaurus=={VERSION} (an x86-64 Linux wheel)"
            )
    return env


def training_lexicon(data_cfg: Any) -> Lexicon:
    """The training split as our models see it: each example through the pipeline's encoder,
    the empty and (``long_policy="filter"``) over-long ones dropped, read back as tokens."""
    prepared = prepare(data_cfg)
    info, truncate = prepared.info, prepared.cfg["long_policy"] == "truncate"
    sizes = {"max_len": info.max_len, "max_target_len": info.max_target_len, "truncate": truncate}
    encode = Encoder(prepared.fields_of("train"), info.src_vocab, info.tgt_vocab, **sizes)
    lexicon = []
    for index, record in enumerate(iter_records(prepared.source("train"))):
        ex = encode(index, record)
        if not (ex["empty"] or (ex["too_long"] and not truncate)):
            word = info.src_vocab.decode_text(ex["inputs"])
            lexicon.append((word, info.tgt_vocab.decode(ex["targets"])))
    return lexicon


def lexicon_digest(lexicon: Lexicon) -> str:
    return hashlib.sha1(json.dumps(lexicon).encode()).hexdigest()


@dataclass
class Trained:
    model: Path  # the WFST
    train_s: float  # wall time of phonetisaurus-train
    params: int  # n-grams of the joint model (each has a weight)
    lexicon_sha1: str


def train(lexicon: Lexicon, directory: str | os.PathLike) -> Trained:
    """Train on ``lexicon`` in ``directory``; a directory already trained on the same lexicon
    is reused (its ``trained.json``), one trained on another is refused."""
    if not lexicon:
        raise ValueError(f"{SYSTEM}: the training lexicon is empty; give a non-empty split")
    directory, digest = Path(directory), lexicon_digest(lexicon)
    done, model = directory / "trained.json", directory / "model.fst"
    if done.exists():
        trained = Trained(**{**json.loads(done.read_text()), "model": model})
        if trained.lexicon_sha1 != digest:
            raise ValueError(f"{directory} was trained on another lexicon; remove it")
        return trained
    env = environment()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lexicon.tsv").write_text("".join(f"{w}\t{' '.join(p)}\n" for w, p in lexicon))
    start = time.perf_counter()
    with open(directory / "train.log", "w") as log:  # --dir_prefix: the files land here
        command = [*TRAIN, "--lexicon", "lexicon.tsv", "--dir_prefix", "."]
        proc = subprocess.run(command, cwd=directory, env=env, stdout=log, stderr=log)
    train_s = time.perf_counter() - start
    if proc.returncode or not model.exists():
        raise ValueError(f"{SYSTEM} training failed (exit {proc.returncode}): see {log.name}")
    trained = Trained(model, train_s, _ngrams(directory / "model.o8.arpa"), digest)
    done.write_text(json.dumps({k: v for k, v in vars(trained).items() if k != "model"}) + "\n")
    return trained


def _ngrams(arpa: Path) -> int:
    """The n-grams of an ARPA model, from its header (``ngram 1=N`` ...)."""
    count = 0
    with open(arpa) as lines:
        for line in lines:
            if line.startswith("\\1-grams:"):
                return count
            count += int(line.split("=")[1]) if line.startswith("ngram ") else 0
    raise ValueError(f"{arpa}: no n-grams")


def _g2p(model: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([*DECODE, f"--model={model}", *args], env=env, capture_output=True)
    if proc.returncode:
        raise ValueError(f"{SYSTEM} decoding failed: {proc.stderr.decode().strip()[-200:]}")
    return proc.stdout.decode()


def decode(model: Path, words: list[str]) -> list[list[str]]:
    """The 1-best phonemes of each word, from one ``phonetisaurus-g2pfst`` process."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("".join(w + "\n" for w in words))
        listing.flush()
        lines = [
            line.split("\t")
            for line in _g2p(model, environment(), "--wordlist=" + listing.name).splitlines()
        ]
    if [line[0] for line in lines] != words or any(len(line) != 3 for line in lines):
        raise ValueError(f"{SYSTEM}: expected 'word<TAB>score<TAB>phonemes' for each word")
    return [phonemes.split() for _, _, phonemes in lines]


def batch1_latency(model: Path, words: list[str], passes: int = 3) -> dict[str, Any]:
    """Milliseconds per single-word call (a process each) over ``passes`` passes over
    ``words``, after one warm-up call: the median and the quartiles."""
    env = environment()
    _g2p(model, env, f"--word={words[0]}")
    samples = []
    for word in words * passes:
        start = time.perf_counter()
        _g2p(model, env, f"--word={word}")
        samples.append(1000.0 * (time.perf_counter() - start))
    q1, median, q3 = (float(q) for q in np.percentile(samples, [25, 50, 75]))
    return {"latency_ms_b1": median, "latency_ms_b1_quartiles": [q1, q3], "calls": len(samples)}
