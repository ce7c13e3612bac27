"""Decoding systems of the AT-versus-NAT comparison, and how each is timed.

A *system* is a trained model plus a way of decoding it: ``at_greedy`` and ``at_beam4`` decode
the AT ``Seq2Seq``; ``nat_<strategy>`` decode the ``NATSeq2Seq`` with one of the strategies of
``attnlab.nat.decoding``. ``run_system`` decodes a whole split in fixed-shape batches, so jit
compiles once per system, and reports

- the hypotheses (token lists) and, for NAT, the chosen lengths;
- ``throughput_seq_s_b64``: sequences per second over the whole split at the eval batch size,
  after one warm-up batch (compilation excluded);
- ``latency_ms_b1``: the median wall time of decoding one sequence at batch 1, over the first
  ``latency_examples`` sequences, after a warm-up call (compilation excluded). Every call ends
  with ``jax.block_until_ready``, so the time covers the device work, not just the dispatch.

The decoders cut sources to the columns in use (``attnlab.decode.compiled``: widths 8, 16,
32, ...), one compilation per width, so each phase first calls the decoder once per width
it will meet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx

from attnlab.decode.at import at_scorer, at_searcher
from attnlab.decode.compiled import source_width
from attnlab.nat.decoding import nat_decoder


class System(NamedTuple):
    """A row of the table: which model, decoded how, and (NAT length beam) rescored by which."""

    model: str  # key of the trained model, one of analysis.at_vs_nat.MODELS
    method: str  # AT: greedy | beam:K; NAT: a strategy of attnlab.nat.decoding
    rescorer: str = ""  # key of an AT model that picks among length_beam candidates


# name -> System, in the order of the report's table.
SYSTEMS: dict[str, System] = {
    "at_greedy": System("at", "greedy"),
    "at_beam4": System("at", "beam:4"),
    "nat_length_pred": System("nat", "length_pred"),
    "nat_length_beam3": System("nat", "length_beam:3"),
    "nat_length_beam5": System("nat", "length_beam:5"),
    # Gu et al. (2018)'s noisy parallel decoding: the AT model scores the 5 candidates in one
    # teacher-forced pass and the best by its length-normalized log-prob is kept.
    "nat_length_beam5_at_rescore": System("nat", "length_beam:5", rescorer="at"),
    "nat_eos_cut": System("nat_eos", "eos_cut"),
    "nat_oracle_length": System("nat", "oracle_length"),
    "nat_mask_predict4": System("nat", "mask_predict:4"),
    "nat_mask_predict10": System("nat", "mask_predict:10"),
    "nat_kd_length_pred": System("nat_kd", "length_pred"),
    # The second edition (issue 17): a fair AT baseline and the one-pass NATs that closed the
    # gap in the literature, each its own model (analysis.at_vs_nat.MODELS).
    "at_deep_shallow_greedy": System("at_ds", "greedy"),
    "at_deep_shallow_beam4": System("at_ds", "beam:4"),
    "nat_glat": System("nat_glat", "length_pred"),
    "nat_ctc": System("nat_ctc", "ctc"),
    "nat_ctc_beam4": System("nat_ctc", "ctc_beam:4"),
    "nat_ctc_glat": System("nat_ctc_glat", "ctc"),
    "nat_dag_greedy": System("nat_dag", "dag_greedy"),
    "nat_dag_lookahead": System("nat_dag", "dag_lookahead"),
    "nat_dag_viterbi": System("nat_dag", "dag_viterbi"),
    "nat_dag_lookahead_kd": System("nat_dag_kd", "dag_lookahead"),
    "nat_ctc_kd": System("nat_ctc_kd", "ctc"),
}

# NAT methods that are not one pass: refinement iterations, or the reference length given.
_NOT_ONE_PASS = ("mask_predict", "oracle_length")


def one_pass(name: str) -> bool:
    """Is ``name`` a one-pass NAT system: one parallel decoder call, its own length, no AT
    rescoring and no refinement iterations (issue 17's quality bar)? ``length_beam:K``
    without a rescorer is one pass: its K candidates are one batched call."""
    system = SYSTEMS[name]
    return (
        not system.model.startswith("at")
        and not system.rescorer
        and not system.method.startswith(_NOT_ONE_PASS)
    )


class Decoded(NamedTuple):
    """One batch decoded by a system."""

    tokens: np.ndarray  # [B, T]
    lengths: np.ndarray | None  # NAT: [B] the chosen lengths, counting the EOS


Decoder = Callable[[np.ndarray, np.ndarray], Decoded]


def make_decoder(
    model: nnx.Module,
    method: str,
    *,
    max_len: int,
    length_penalty: float,
    rescorer: nnx.Module | None = None,
) -> Decoder:
    """``decode(src [B, S], ref_lengths [B] or, length_beam:K, [B, K]) -> Decoded(...)``.

    An AT system ignores ``ref_lengths`` (``latency.forced_at_decoder`` times an untrained AT
    at given lengths). ``rescorer``, an AT model,
    picks among a NAT ``length_beam`` system's candidates by its log-prob, length-normalized
    like beam search's hypotheses (``length_penalty``).
    """
    if method == "greedy" or method.startswith("beam:"):
        beam = int(method.split(":")[1]) if method.startswith("beam:") else 1
        search = at_searcher(  # split once: per-call splitting would dominate batch-1 latency
            model,
            method="beam" if beam > 1 else "greedy",
            beam_size=beam,
            max_len=max_len,
            length_penalty=length_penalty,
        )

        def decode_at(src: np.ndarray, ref_lengths: np.ndarray) -> Decoded:
            return Decoded(jax.block_until_ready(search(src)[0]), None)

        return decode_at
    score = None if rescorer is None else at_scorer(rescorer, length_penalty=length_penalty)
    nat = nat_decoder(model, method, max_len=max_len, rescorer=score)

    def decode_nat(src: np.ndarray, ref_lengths: np.ndarray) -> Decoded:
        out = nat(src, ref_lengths)
        return Decoded(*jax.block_until_ready((out.tokens, out.lengths)))

    return decode_nat


@dataclass
class SystemRun:
    """What one system produced on one split."""

    name: str
    hyps: list[list[int]]  # token ids after BOS up to (not including) EOS, one per example
    lengths: list[int] | None  # NAT: chosen length, counting the EOS
    throughput_seq_s: float
    latency_ms_b1: float
    latency_samples_ms: list[float]


def strip(tokens: Sequence[int], eos_id: int = 2, pad_id: int = 0) -> list[int]:
    """Tokens up to the first EOS, without PAD."""
    out = []
    for t in tokens:
        t = int(t)
        if t == eos_id:
            break
        if t != pad_id:
            out.append(t)
    return out


def valid_rows(batches: Sequence[dict[str, Any]], key: str) -> list[Any]:
    """``batch[key][i]`` of every valid example (``batch["valid"][i]``), in order."""
    return [
        batch[key][i] for batch in batches for i in np.flatnonzero(np.asarray(batch["valid"], bool))
    ]


def _ref_lengths(targets: np.ndarray) -> np.ndarray:
    """Target lengths counting the EOS (what ``oracle_length`` needs), ``[B]`` int32."""
    return np.sum(np.asarray(targets) != 0, axis=-1).astype(np.int32)


def _valid(batches: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    return [np.asarray(b["valid"], bool) for b in batches]


def _given_lengths(
    batches: Sequence[dict[str, Any]], lengths: Sequence[int] | Sequence[Sequence[int]] | None
) -> list[np.ndarray]:
    """Per batch, the lengths ``decode`` gets: the references', or ``lengths`` on the valid
    rows (1 on the others): ``[B]``, or ``[B, K]`` where each example has K (length_beam's)."""
    refs = [_ref_lengths(b["targets"]) for b in batches]
    if lengths is None:
        return refs
    valid = _valid(batches)
    counts = [int(v.sum()) for v in valid]
    if len(lengths) != sum(counts):
        raise ValueError(f"{len(lengths)} lengths for {sum(counts)} examples")
    table = np.asarray(lengths, np.int32)
    out, start = [], 0
    for ref, ok, count in zip(refs, valid, counts, strict=True):
        given = np.ones(ref.shape + table.shape[1:], np.int32)
        given[ok] = table[start : start + count]
        start += count
        out.append(given)
    return out


def warm_up(decode: Decoder, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Call ``decode`` on the first ``(src, ref_lengths)`` of each source width in ``pairs``."""
    seen: set[int] = set()
    for src, ref in pairs:
        width = source_width(src)
        if width not in seen:
            seen.add(width)
            decode(src, ref)


def run_system(
    name: str,
    decode: Decoder,
    batches: Sequence[dict[str, Any]],
    *,
    latency_examples: int,
    lengths: Sequence[int] | None = None,
) -> SystemRun:
    """Decode every valid example of ``batches``; measure throughput and batch-1 latency.

    ``lengths`` (one per valid example, counting the EOS, or K for a ``length_beam:K``)
    replace the reference lengths that ``decode`` is given: the recorded lengths or steps a
    fresh model is timed at (``analysis.recorded``).
    """
    if not batches:
        raise ValueError("no evaluation batches to decode")
    given = _given_lengths(batches, lengths)
    warm_up(decode, [(b["inputs"], n) for b, n in zip(batches, given, strict=True)])  # compile
    hyps: list[list[int]] = []
    chosen: list[int] = []
    num = 0
    start = time.perf_counter()
    for batch, ref in zip(batches, given, strict=True):
        out = decode(batch["inputs"], ref)
        valid = np.asarray(batch["valid"], bool)
        hyps.extend(strip(row) for row in np.asarray(out.tokens)[valid])
        if out.lengths is not None:
            chosen.extend(int(n) for n in np.asarray(out.lengths)[valid])
        num += int(valid.sum())
    throughput = num / (time.perf_counter() - start)

    count = max(latency_examples, 1)
    per_example = [n[ok] for n, ok in zip(given, _valid(batches), strict=True)]
    singles = [
        (np.asarray(src)[None], np.asarray([n], np.int32))
        for src, n in zip(
            valid_rows(batches, "inputs")[:count],
            np.concatenate(per_example)[:count],
            strict=True,
        )
    ]
    warm_up(decode, singles)  # compile at batch 1
    samples = []
    for src, ref in singles:
        t0 = time.perf_counter()
        decode(src, ref)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return SystemRun(
        name=name,
        hyps=hyps,
        lengths=chosen or None,
        throughput_seq_s=throughput,
        latency_ms_b1=float(np.median(samples)),
        latency_samples_ms=samples,
    )
