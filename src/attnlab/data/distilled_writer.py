"""``write_distilled``: a teacher's outputs written as the training split of a dataset.

See ``distilled.py`` for what the data is and how it is read. The directory is written in a
temporary sibling and renamed into place, under a file lock: it either exists whole or not at
all, so a killed run can simply call ``write_distilled`` again.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ml_collections
from absl import logging

from attnlab.data.builders.distilled import DistilledSeq2Seq
from attnlab.data.config import DISTILLED, data_config, data_dir
from attnlab.data.datasets import clear_cache, dataset_info
from attnlab.data.distilled import (
    FORMAT,
    MANIFEST,
    VOCAB_FILES,
    check_same_dataset,
    read_manifest,
)
from attnlab.data.sources import file_lock, quiet_progress
from attnlab.data.vocab import Vocab
from attnlab.specials import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN

_FRAMING = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN)  # the pipeline adds these; a pair never holds them
_BARE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def distilled_directory(data_cfg: Any, name: str | os.PathLike) -> Path:
    """Where ``write_distilled`` puts ``name``: a bare name (letters, digits, ``_.-``) goes to
    ``DATA_DIR/distilled/NAME``; a ``Path``, or a string that is not a bare name, is the
    directory itself (``~`` expanded, made absolute)."""
    if isinstance(name, os.PathLike):
        return Path(os.path.abspath(os.path.expanduser(os.fspath(name))))
    if not name or name in (".", ".."):
        raise ValueError(f"distilled data needs a name or a directory, got {name!r}")
    if _BARE_NAME.fullmatch(name):
        return Path(data_dir(data_config(**data_cfg))) / DISTILLED / name
    return Path(os.path.abspath(os.path.expanduser(name)))


def write_distilled(
    data_cfg: Any,
    pairs: Iterable[tuple[Sequence[str], Sequence[str]]],
    name: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> ml_collections.ConfigDict:
    """Write ``pairs`` as the training split of a distilled copy of ``data_cfg``'s dataset.

    ``pairs`` holds ``(input tokens, target tokens)``: lists of token strings of the original
    vocabularies, without PAD, BOS or EOS (what ``Vocab.decode`` returns for ids). They are
    kept as given, in order; a token outside the vocabulary is read as UNK and an empty side
    is dropped, both counted by the pipeline as for any data. ``name`` is a bare name or a
    directory (``distilled_directory``; pass a ``Path`` to mean a directory unambiguously).

    If the directory already holds distilled data of the same dataset, it is kept and
    ``pairs`` is not read at all (so a lazy generator costs nothing on a re-run); with
    ``overwrite=True`` it is replaced. Returns the data config that reads it (module docstring).
    """
    base = data_config(**data_cfg)
    if base.name == DISTILLED:
        raise ValueError(
            "write_distilled needs the original dataset's data config, not a distilled one"
        )
    info = dataset_info(base)
    if info.task != "seq2seq":
        raise ValueError(f"distillation needs a seq2seq dataset; {base.name!r} is {info.task}")
    directory = distilled_directory(base, name)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    with file_lock(str(parent), directory.name):
        _remove_leftovers(directory)  # of killed writers: the lock says none is running
        if directory.exists():
            if not (directory / MANIFEST).is_file():
                raise ValueError(
                    f"{directory} exists and is not distilled data; choose another name"
                )
            if not overwrite:
                check_same_dataset(read_manifest(directory), base, directory)
                logging.info("distilled data already in %s; not written again", directory)
                return _reading_config(base, directory)
        tmp = parent / f".{directory.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            count = _write(tmp, pairs, base, info.src_vocab, info.tgt_vocab)
            _move_into_place(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    clear_cache()  # an overwritten directory may be cached under the same config
    logging.info("wrote %d distilled pairs of %s to %s", count, base.name, directory)
    return _reading_config(base, directory)


def _reading_config(base: ml_collections.ConfigDict, directory: Path) -> ml_collections.ConfigDict:
    return data_config(
        **dict(base.to_dict(), name=DISTILLED, distill_base=base.name, distill_dir=str(directory))
    )


def _write(
    tmp: Path, pairs: Iterable, base: ml_collections.ConfigDict, src: Vocab, tgt: Vocab
) -> int:
    tmp.mkdir()
    builder = DistilledSeq2Seq(
        pairs=_checked(pairs), data_dir=str(tmp / "tfds"), file_format="array_record"
    )
    with quiet_progress():
        builder.download_and_prepare()
    count = int(builder.info.splits["train"].num_examples)
    src.save(tmp / VOCAB_FILES["source"])
    tgt.save(tmp / VOCAB_FILES["target"])
    manifest = {"format": FORMAT, "base": base.to_dict(), "examples": count}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return count


def _checked(pairs: Iterable) -> Iterator[tuple[list[str], list[str]]]:
    """``pairs`` as token lists, refusing what would be read back as something else."""
    count = 0
    for index, given in enumerate(pairs):
        try:
            pair = () if isinstance(given, (str, bytes)) else tuple(given)
        except TypeError:
            pair = ()
        if len(pair) != 2:
            raise ValueError(
                f"pair {index}: expected (input tokens, target tokens), got {given!r:.80}"
            )
        yield _tokens(index, "input", pair[0]), _tokens(index, "target", pair[1])
        count += 1
    if not count:
        raise ValueError("write_distilled got no pairs")


def _tokens(index: int, side: str, tokens: Any) -> list[str]:
    if isinstance(tokens, (str, bytes)):
        raise ValueError(f"pair {index}: the {side} must be a list of tokens, got {tokens!r:.80}")
    tokens = list(tokens)
    for token in tokens:
        if not isinstance(token, str):
            raise ValueError(
                f"pair {index}: {side} token {token!r} is not a string; pairs hold token "
                "strings (Vocab.decode turns ids into them)"
            )
        if token in _FRAMING:
            raise ValueError(
                f"pair {index}: the {side} holds the special token {token!r}; leave out "
                f"{', '.join(_FRAMING)} (Vocab.decode does)"
            )
    return tokens


def _move_into_place(tmp: Path, directory: Path) -> None:
    """Rename ``tmp`` to ``directory``, replacing an old version (moved aside, then removed)."""
    old = None
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(directory, old)
    os.rename(tmp, directory)
    if old is not None:
        shutil.rmtree(old)


def _remove_leftovers(directory: Path) -> None:
    for kind in ("tmp", "old"):
        pattern = str(directory.with_name(f".{glob.escape(directory.name)}.{kind}-*"))
        for path in glob.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
