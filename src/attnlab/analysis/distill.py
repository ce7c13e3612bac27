"""Sequence-level knowledge distillation data (Kim & Rush 2016; Gu et al. 2018): the AT
teacher's beam outputs on the distinct training sources become the NAT student's training
split; validation and test keep the real references.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from attnlab.analysis import recorded
from attnlab.analysis.systems import strip
from attnlab.data import dataset_info, make_eval_batches, write_distilled
from attnlab.decode.at import at_decode


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

    With ``recorded_dir`` the pairs are also recorded there (``analysis.recorded``), and
    without a teacher they are read from there: a student can train where its teacher's
    checkpoint is not."""
    if teacher is None:
        pairs = recorded.load_pairs(recorded_dir) if recorded_dir else None
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
        recorded.save_pairs(recorded_dir, kept)
    return config
