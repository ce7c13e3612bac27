"""Sequence-level knowledge distillation (Kim & Rush 2016; Gu et al. 2018): the AT teacher's
beam outputs on the distinct training sources become the NAT student's training split;
validation and test keep the real references. The teacher's outputs can be kept in a directory
(``PAIRS_FILE``, ``save_pairs``), so that a student trains where its teacher's checkpoint is
not (docs/recorded_outputs.md).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from attnlab.data import dataset_info, make_eval_batches, write_distilled
from attnlab.decode.at import at_decode
from attnlab.specials import strip

PAIRS_FILE = "distilled.tsv.gz"


def distilled_data_config(
    teacher: nnx.Module | None,
    data_cfg: ml_collections.ConfigDict,
    directory: Path,
    *,
    beam_size: int,
    batch_size: int,
    length_penalty: float,
    recorded_dir: str = "",
) -> ml_collections.ConfigDict:
    """Decode the training sources with ``teacher`` and write them as a dataset (once).

    With ``recorded_dir`` the pairs are also kept there (``save_pairs``), and
    without a teacher they are read from there: a student can train where its teacher's
    checkpoint is not."""
    if teacher is None:
        pairs = load_pairs(recorded_dir) if recorded_dir else None
        if pairs is None:
            raise ValueError(
                f"no teacher to distill from, and no recorded outputs in {recorded_dir!r}"
            )
        return write_distilled(data_cfg, pairs, Path(directory))
    info, search = dataset_info(data_cfg), dict(method="beam", beam_size=beam_size)
    search.update(length_penalty=length_penalty)
    kept: list[tuple[list[str], list[str]]] = []

    def pairs():  # lazy: write_distilled never reads it when the data already exists
        seen: set[tuple[int, ...]] = set()
        for k, batch in enumerate(make_eval_batches(data_cfg, "train", batch_size=batch_size)):
            src, max_len = np.asarray(batch["inputs"]), int(batch["targets"].shape[1])
            out = np.asarray(at_decode(teacher, src, max_len=max_len, **search))
            for i in range(len(src)):
                ids = tuple(int(t) for t in src[i] if t != 0)
                if not batch["valid"][i] or ids in seen:
                    continue
                seen.add(ids)
                target = info.tgt_vocab.decode(strip(out[i]))
                if target:
                    kept.append((info.src_vocab.decode(list(ids)), target))
                    yield kept[-1]
            if k % 50 == 0:
                logging.info("distillation: %d training sources decoded", len(seen))

    config = write_distilled(data_cfg, pairs(), Path(directory))
    if recorded_dir and kept:
        save_pairs(recorded_dir, kept)
    return config


def write_gzip_atomic(path: Path, data: bytes) -> None:
    """``data`` gzipped into ``path``, through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    # no name and mtime=0 in the header: the same outputs give the same bytes, so a re-run
    # changes no committed file
    tmp.write_bytes(gzip.compress(data, mtime=0))
    os.replace(tmp, path)


def save_pairs(directory: str | os.PathLike, pairs: Iterable[tuple[list[str], list[str]]]) -> Path:
    """The teacher's outputs on the training split: ``source tokens<TAB>output tokens``."""
    lines = [" ".join(src) + "\t" + " ".join(tgt) + "\n" for src, tgt in pairs]
    path = Path(directory) / PAIRS_FILE
    write_gzip_atomic(path, "".join(lines).encode())
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
