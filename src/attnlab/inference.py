"""Use a trained model: ``load(workdir)`` gives a ``Predictor`` whose ``predict(texts)`` answers.

``load`` reads ``DIR/config.json`` (the resolved config of the run), restores the newest
readable checkpoint (or ``step=N``) and the dataset's vocabularies and label names, which live
beside the data (``attnlab.data.dataset_info``; a dataset not built yet is built first).

``Predictor.predict(texts, decode=None, unknown="error")`` returns one result per text:

- seq2seq (AT ``Seq2Seq`` or ``NATSeq2Seq``, e.g. G2P): a ``Transduction``, the output tokens
  (phonemes) and their text;
- tagger (e.g. ``cn_address``): a ``Tagging``, the tag of every input token and the text cut
  into typed pieces that cover every character once (``广东省/province 深圳市/city ...``,
  runs outside any entity as ``/O``), from ``attnlab.metrics.bio_segments``;
- classifier (e.g. ``cmudict_syllables``): a ``Classification``, the class id, its label
  name and probability.

``str(result)`` is the line ``experiments/predict.py`` prints.

Decoding (``decode``), seq2seq only: ``greedy`` or ``beam:K`` for AT; for a NAT, the strategies
of ``attnlab.nat.decoding`` that its training recipe supports (``decode_choices``, from
its recipe, ``attnlab.nat``): ``eos_cut`` for ``eos_canvas``; ``length_pred``,
``length_beam:K`` for ``vanilla`` and ``cmlm``, and for a CMLM refinement by ``mask_predict:T``
alone or after ``+``; ``ctc``, ``ctc_beam:K`` for ``ctc``; ``dag_greedy``, ``dag_lookahead``,
``dag_viterbi`` for ``dag``. ``oracle_length`` needs a reference, and refining a vanilla NAT
is the known trap that gives garbage, so both are refused. The default is the config's own
``decode_method``/``beam_size`` or ``nat_strategy`` (empty: the recipe's default). Outputs are
decoded up to the dataset's longest target, as evaluation during training does.

Inputs. Surrounding whitespace is removed. Where the source vocabulary has one letter case
(``Vocab.case``: CMUdict's words are lower-case), the text is put into it first
(``Attention`` reads as ``attention``) and the result's ``case_folded`` names the case
(``"lower"``; empty when the text was already in it). A text that is empty, longer than the
model's ``max_len`` tokens, or holds tokens outside the source vocabulary raises
``InputError`` naming the text and the problem; with ``unknown="unk"`` unknown tokens are
read as ``<unk>`` instead (as the training pipeline does) and listed in the result's
``unknown``.

Speed. Texts are sorted by length and decoded in batches of at most ``BATCH`` rows; a batch is
padded to a row count in ``ROW_BUCKETS`` (repeating its first text) and to a source width of
``attnlab.decode.compiled.widths`` (8, 16, 32, ...), so each (rows, width) bucket compiles
once and is reused by every later call.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from attnlab.data import dataset_info
from attnlab.decode.at import at_searcher
from attnlab.decode.compiled import bucket, jit_model
from attnlab.metrics import bio_segments
from attnlab.nat.decoding import nat_decoder
from attnlab.specials import NUM_SPECIALS, PAD, UNK, UNK_TOKEN
from attnlab.train.restore import restore

BATCH = 64
ROW_BUCKETS = (1, 4, 16, BATCH)
UNKNOWN_POLICIES = ("error", "unk")
_BEAM = re.compile(r"beam:([1-9][0-9]*)")


@dataclasses.dataclass(frozen=True)
class Transduction:
    """A seq2seq output: ``tokens`` (no EOS) and their ``text``; ``score`` is the decoder's."""

    tokens: tuple[str, ...]
    text: str
    score: float
    unknown: tuple[str, ...] = ()
    case_folded: str = ""

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class Tagging:
    """A tag per input token, and ``spans``: ``(piece, type)`` covering the text in order."""

    tags: tuple[str, ...]
    spans: tuple[tuple[str, str], ...]
    unknown: tuple[str, ...] = ()
    case_folded: str = ""

    def __str__(self) -> str:
        return " ".join(f"{piece}/{kind}" for piece, kind in self.spans)


@dataclasses.dataclass(frozen=True)
class Classification:
    """A class id, its label name (the id as text when the dataset names none), p(class)."""

    label: int
    name: str
    probability: float
    unknown: tuple[str, ...] = ()
    case_folded: str = ""

    def __str__(self) -> str:
        return self.name


class InputError(ValueError):
    """A text the model cannot read: ``index`` (0-based), ``problem``, and how many were bad."""

    def __init__(self, index: int, problem: str, *, bad: int = 1, unknown: bool = False) -> None:
        self.index, self.problem, self.bad, self.unknown = index, problem, bad, unknown
        more = f" (and {bad - 1} more bad texts)" if bad > 1 else ""
        hint = "; unknown='unk' reads them as <unk>" if unknown else ""
        super().__init__(f"text {index}: {problem}{hint}{more}")


def _logits(model: nnx.Module, tokens: jax.Array) -> jax.Array:
    return model(tokens)


class Predictor:
    """A restored model with its vocabularies; see the module docstring."""

    def __init__(self, model: nnx.Module, config: Any, info: Any, step: int) -> None:
        self.model, self.config, self.info, self.step = model, config, info, step
        self.kind = str(config.model.name)  # seq2seq | nat | tagger | classifier
        self.max_len = int(config.model.max_len)  # the longest input, in tokens
        self._decoders: dict[str, Callable] = {}
        self._forward = None
        if self.kind in ("tagger", "classifier"):
            self._forward = jit_model(_logits, model)

    # --- decoding choices ----------------------------------------------------------------
    def decode_choices(self) -> tuple[str, ...]:
        """The ``decode`` forms this model accepts (K, T >= 1); empty for taggers/classifiers."""
        if self.kind == "seq2seq":
            return ("greedy", "beam:K")
        if self.kind != "nat":
            return ()
        strategies = self.model.recipe.strategies
        return tuple(
            s.replace("<length strategy>", "<length_pred|length_beam:K>")
            for s in strategies
            if s != "oracle_length"
        )

    def default_decode(self) -> str | None:
        if self.kind == "seq2seq":
            beam = self.config.decode_method == "beam"
            return f"beam:{self.config.beam_size}" if beam else "greedy"
        if self.kind != "nat":
            return None
        try:
            recipe = self.model.recipe
            return self._check_decode(recipe.strategy_or_default(self.config.nat_strategy))
        except ValueError:
            return self.decode_choices()[0]

    def _check_decode(self, decode: str) -> str:
        choices = self.decode_choices()
        if not choices:
            raise ValueError(f"decode applies to seq2seq models; this one is a {self.kind}")
        refused = ValueError(
            f"unknown decode {decode!r} for this {self.kind} model; valid: {', '.join(choices)}"
        )
        if self.kind == "seq2seq":
            if decode != "greedy" and not _BEAM.fullmatch(decode):
                raise refused
            return decode
        try:
            parsed = self.model.recipe.parse_strategy(decode)
        except ValueError:
            raise refused from None
        if self.model.recipe.needs_reference(parsed):
            raise refused
        return decode

    def _decoder(self, decode: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """``run(src [B, S]) -> (tokens [B, T], scores [B])``, made once per ``decode``."""
        if decode not in self._decoders:
            canvas = int(self.info.max_target_len)
            if self.kind == "seq2seq":
                beam = _BEAM.fullmatch(decode)
                search = at_searcher(
                    self.model,
                    method="beam" if beam else "greedy",
                    beam_size=int(beam.group(1)) if beam else 1,
                    max_len=canvas,
                    length_penalty=float(self.config.length_penalty),
                )
                self._decoders[decode] = search
            else:
                run = nat_decoder(self.model, decode, max_len=canvas)
                self._decoders[decode] = lambda src: run(src)[::2]  # (tokens, scores)
        return self._decoders[decode]

    # --- inputs ----------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, unknown: str = "error") -> list[tuple]:
        """``[(tokens, ids, unknown tokens, case folded to), ...]``; raises ``InputError`` for
        the first bad one."""
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, not one string")
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown={unknown!r}; valid: {', '.join(UNKNOWN_POLICIES)}")
        vocab = self.info.src_vocab
        unit = "characters" if vocab.tokenizer == "char" else "tokens"
        encoded, errors = [], []
        for i, text in enumerate(texts):
            text = str(text).strip()
            folded = vocab.fold_case(text)
            case = vocab.case if folded != text else ""
            tokens = vocab.tokenize(folded)
            ids = [UNK if t < NUM_SPECIALS else t for t in vocab.encode(tokens)]
            outside = sorted({tok for tok, t in zip(tokens, ids) if t == UNK} - {UNK_TOKEN})
            if not tokens:
                errors.append(InputError(i, "empty"))
            elif len(tokens) > self.max_len:
                problem = f"{len(tokens)} {unit}; the model reads at most {self.max_len}"
                errors.append(InputError(i, problem))
            elif outside and unknown == "error":
                listed = ", ".join(repr(t) for t in outside)
                after = f" (after {case}-casing)" if case else ""
                problem = f"{unit} not in the vocabulary of {self.info.name}{after}: {listed}"
                errors.append(InputError(i, problem, unknown=True))
            encoded.append((tokens, ids, tuple(outside), case))
        if errors:
            first = errors[0]
            raise InputError(first.index, first.problem, bad=len(errors), unknown=first.unknown)
        return encoded

    # --- prediction ------------------------------------------------------------------------
    def predict(
        self, texts: Sequence[str], decode: str | None = None, *, unknown: str = "error"
    ) -> list[Transduction | Tagging | Classification]:
        """One result per text, in order; see the module docstring."""
        if decode is not None:
            decode = self._check_decode(str(decode))
        elif self.kind in ("seq2seq", "nat"):
            decode = self.default_decode()
        encoded = self.encode(texts, unknown=unknown)
        results: list[Any] = [None] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][1]))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            src = self._batch([encoded[i][1] for i in chunk])
            for i, result in zip(chunk, self._run(src, decode, [encoded[i] for i in chunk])):
                results[i] = result
        return results

    def _batch(self, rows: list[list[int]]) -> np.ndarray:
        """Rows padded with PAD to a width bucket, then to a row bucket (first row repeated)."""
        width = bucket(max(len(r) for r in rows), self.max_len)
        src = np.full((bucket_rows(len(rows)), width), PAD, np.int32)
        for i in range(src.shape[0]):
            row = rows[i] if i < len(rows) else rows[0]
            src[i, : len(row)] = row
        return src

    def _run(self, src: np.ndarray, decode: str | None, items: list) -> list[Any]:
        labels = self.info.label_names
        if self.kind in ("seq2seq", "nat"):
            tokens, scores = (np.asarray(x) for x in self._decoder(decode)(src))
            vocab = self.info.tgt_vocab
            out = []
            for row, (_, _, outside, case) in enumerate(items):
                words = vocab.decode(tokens[row].tolist())
                text = vocab.detokenize(words)
                out.append(Transduction(tuple(words), text, float(scores[row]), outside, case))
            return out
        logits = np.asarray(self._forward(src), np.float32)
        if self.kind == "classifier":
            probs = np.asarray(jax.nn.softmax(logits, axis=-1))
            out = []
            for row, (_, _, outside, case) in enumerate(items):
                k = int(np.argmax(probs[row]))
                name = labels[k] if labels else str(k)
                out.append(Classification(k, name, float(probs[row, k]), outside, case))
            return out
        out = []
        detokenize = self.info.src_vocab.detokenize
        for row, (tokens, _, outside, case) in enumerate(items):
            tags = tuple(labels[int(k)] for k in np.argmax(logits[row, : len(tokens)], axis=-1))
            spans = tuple(
                (detokenize(tokens[a:b]), kind) for kind, a, b in bio_segments(list(tags))
            )
            out.append(Tagging(tags, spans, outside, case))
        return out


def bucket_rows(n: int) -> int:
    """The smallest of ``ROW_BUCKETS`` that holds ``n`` rows (``n <= BATCH``)."""
    return next(b for b in ROW_BUCKETS if b >= n)


def load(workdir: str | os.PathLike, step: int | None = None) -> Predictor:
    """A ``Predictor`` for the training workdir ``workdir`` (newest checkpoint, or ``step``)."""
    model, config, step = restore(workdir, step=step)
    return Predictor(model, config, dataset_info(config.data), step)
