"""Decoding systems of the AT-versus-NAT comparison (``SYSTEMS``), and how each is timed.

A system is a trained model plus a way of decoding it. ``run_system`` decodes a split in
fixed-shape batches; ``timing_of`` gives the calls that time it, which
``analysis.latency.side_by_side`` makes for every system in the same passes: sequences per
second at the eval batch size and batch-1 latency, after a warm-up call per source width
(compilation excluded), every call ending in ``jax.block_until_ready``. How and why:
docs/decoding_cost.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx

from attnlab.decode.at import at_scorer, at_searcher
from attnlab.decode.compiled import source_width
from attnlab.nat.decoding import nat_decoder
from attnlab.specials import strip


class System(NamedTuple):
    """A row of the table: which model, decoded how, and (NAT length beam) rescored by which."""

    model: str  # key of the trained model, one of analysis.at_vs_nat.MODELS
    method: str  # AT: greedy | beam:K; NAT: a strategy of attnlab.nat.decoding
    rescorer: str = ""  # key of an AT model that picks among length_beam candidates


# The AT tuning grid's models (issue 37; experiments/configs/at_vs_nat.py, AT_TUNING): one
# thing of the base AT changed in each.
TUNING_MODELS = tuple(
    f"at_tune_{n}" for n in ("wide", "deep", "dropout", "smoothing", "lr", "warmup")
)

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
    "nat_mask_predict4": System("nat_cmlm", "mask_predict:4"),
    "nat_mask_predict10": System("nat_cmlm", "mask_predict:10"),
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
    # The third edition's ablations (issue 37), each model trained for the ablation budget.
    "at_8k_greedy": System("at_8k", "greedy"),
    "at_8k_beam4": System("at_8k", "beam:4"),
    # the AT tuning grid, decoded on the validation split to pick the main table's AT
    **{f"{m}_beam4": System(m, "beam:4") for m in TUNING_MODELS},
    "nat_ctc_8k": System("nat_ctc_8k", "ctc"),
    "nat_ctc_glat_linear": System("nat_ctc_glat_linear", "ctc"),
    "nat_ctc_glat_anneal": System("nat_ctc_glat_anneal", "ctc"),
    "nat_vanilla_8k": System("nat_vanilla_8k", "length_pred"),
    "nat_glat_linear": System("nat_glat_linear", "length_pred"),
    "nat_glat_anneal": System("nat_glat_anneal", "length_pred"),
    "nat_dag_x2": System("nat_dag_x2", "dag_lookahead"),
    "nat_dag_x4": System("nat_dag_x4", "dag_lookahead"),
    "nat_dag_x8": System("nat_dag_x8", "dag_lookahead"),
    "nat_dag_8k_kd": System("nat_dag_8k_kd", "dag_lookahead"),
    "nat_ctc_x2": System("nat_ctc_x2", "ctc"),
    "nat_ctc_x3": System("nat_ctc_x3", "ctc"),
}

# The ATs every speed ratio is taken against: greedy and beam 4, and the deep-shallow AT's
# greedy search, the fastest AT and the baseline Kasai et al. (2021) and Helcl et al. (2022)
# call realistic.
SPEED_BASES = ("at_greedy", "at_beam4", "at_deep_shallow_greedy")

# Systems that are no model of ours, each trained, decoded and timed by its own module:
# ``phonetisaurus``, the joint-sequence WFST G2P (analysis.wfst_baseline).
BASELINES = ("phonetisaurus",)

# NAT methods that are not one pass: refinement iterations, or the reference length given.
_NOT_ONE_PASS = ("mask_predict", "oracle_length")


def one_pass(name: str) -> bool:
    """Is ``name`` a one-pass NAT system: one parallel decoder call, its own length, no AT
    rescoring and no refinement iterations (issue 17's quality bar)? ``length_beam:K``
    without a rescorer is one pass: its K candidates are one batched call."""
    system = SYSTEMS[name]
    return not (
        at_beam(system.method) or system.rescorer or system.method.startswith(_NOT_ONE_PASS)
    )


def at_beam(method: str) -> int:
    """The beam of an AT search, ``greedy`` (1) or ``beam:K`` (K); 0 for a NAT strategy."""
    return 1 if method == "greedy" else int(method[5:]) if method.startswith("beam:") else 0


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
    """``decode(src [B, S], ref_lengths [B] or, length_beam:K, [B, K]) -> Decoded(...)``; an AT
    ignores ``ref_lengths``. ``rescorer``, an AT model, picks among a NAT ``length_beam``'s
    candidates by its log-prob, length-normalized like beam search's (``length_penalty``)."""
    if beam := at_beam(method):  # split the model once: per call, it would dominate latency
        search = at_searcher(
            model,
            method="beam" if beam > 1 else "greedy",
            beam_size=beam,
            max_len=max_len,
            length_penalty=length_penalty,
        )
        return lambda src, ref_lengths: Decoded(jax.block_until_ready(search(src)[0]), None)
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


class Timing(NamedTuple):
    """The calls that time a system (``analysis.latency.side_by_side``)."""

    decode: Decoder
    singles: list[tuple[np.ndarray, np.ndarray]]  # (src [1, S], given [1] or [1, K]): batch 1
    batches: list[tuple[np.ndarray, np.ndarray, int]]  # (src, given, valid rows): eval batch
    how: str  # what ran: the trained model, or a fresh one forced to the recorded decode


def valid_rows(batches: Sequence[dict[str, Any]], key: str) -> list[Any]:
    """``batch[key][i]`` of every valid example (``batch["valid"][i]``), in order."""
    return [
        batch[key][i] for batch in batches for i in np.flatnonzero(np.asarray(batch["valid"], bool))
    ]


def _given_lengths(batches: Sequence[dict[str, Any]], lengths) -> list[np.ndarray]:
    """Per batch, the lengths ``decode`` gets: the references' (counting the EOS), or
    ``lengths`` on the valid rows (1 on the others): ``[B]``, or ``[B, K]`` (length_beam's)."""
    refs = [np.sum(np.asarray(b["targets"]) != 0, axis=-1).astype(np.int32) for b in batches]
    if lengths is None:
        return refs
    table, counts = np.asarray(lengths, np.int32), [int(np.sum(b["valid"])) for b in batches]
    if len(table) != sum(counts):
        raise ValueError(f"{len(table)} lengths for {sum(counts)} examples")
    out = []
    for ref, batch, part in zip(refs, batches, np.split(table, np.cumsum(counts)[:-1])):
        out.append(np.ones(ref.shape + table.shape[1:], np.int32))
        out[-1][np.asarray(batch["valid"], bool)] = part
    return out


def warm_up(decode: Decoder, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Call ``decode`` on the first ``(src, ref_lengths)`` of each source width in ``pairs``."""
    seen: set[int] = set()
    for src, ref in pairs:
        if source_width(src) not in seen:
            seen.add(source_width(src))
            decode(src, ref)


def run_system(
    name: str,
    decode: Decoder,
    batches: Sequence[dict[str, Any]],
    *,
    lengths: Sequence[int] | None = None,
) -> SystemRun:
    """Decode every valid example of ``batches``; ``lengths`` (one per valid example, or K
    for a ``length_beam:K``) replace the reference lengths ``decode`` is given."""
    if not batches:
        raise ValueError("no evaluation batches to decode")
    hyps: list[list[int]] = []
    chosen: list[int] = []
    for batch, ref in zip(batches, _given_lengths(batches, lengths), strict=True):
        out = decode(batch["inputs"], ref)
        valid = np.asarray(batch["valid"], bool)
        hyps.extend(strip(row) for row in np.asarray(out.tokens)[valid])
        if out.lengths is not None:
            chosen.extend(int(n) for n in np.asarray(out.lengths)[valid])
    return SystemRun(name, hyps, chosen or None)


def timing_of(
    decode: Decoder,
    batches: Sequence[dict[str, Any]],
    *,
    latency_examples: int,
    how: str,
    lengths: Sequence[int] | None = None,
) -> Timing:
    """What times ``decode``: every batch of ``batches`` (throughput), and the first
    ``latency_examples`` valid examples one at a time (batch-1 latency), each given its
    reference length or, with ``lengths``, the recorded lengths or steps a fresh model is
    timed at."""
    if not batches:
        raise ValueError("no evaluation batches to time")
    given = _given_lengths(batches, lengths)
    sources = valid_rows(batches, "inputs")[: max(latency_examples, 1)]
    refs = valid_rows([{**b, "given": n} for b, n in zip(batches, given, strict=True)], "given")
    singles = [(np.asarray(s)[None], np.asarray([n], np.int32)) for s, n in zip(sources, refs)]
    counts = [int(np.sum(np.asarray(b["valid"], bool))) for b in batches]
    whole = list(zip((b["inputs"] for b in batches), given, counts, strict=True))
    return Timing(decode, singles, whole, how)
