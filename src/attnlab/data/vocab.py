"""Vocabularies: token <-> id maps that share the special ids of ``attnlab.specials``.

A ``Vocab`` knows its tokenizer, so it turns raw text into ids and back:

- ``char``: one token per character (letters of a word, characters of an address);
- ``space``: whitespace-separated symbols (phonemes, synthetic symbols);
- ``sentencepiece``: subword pieces of a SentencePiece model trained on the training split.

Ids ``0..4`` are ``PAD, BOS, EOS, UNK, MASK``; regular tokens follow, most frequent first (ties
by the token itself), so the same training data always gives the same ids. Encoding is lossless
for in-vocabulary tokens: ``decode(encode(tokens)) == tokens``. A token outside the vocabulary
becomes ``UNK``. Decoding stops at the first ``EOS`` and skips ``PAD`` and ``BOS``.

``case`` says whether the vocabulary has one letter case (``"lower"``, ``"upper"``) or not
(``None``: both cases, or no cased letters); ``fold_case(text)`` puts a text into that case
(CMUdict's words are all lower-case, so ``Attention`` reads as ``attention``).
"""

from __future__ import annotations

import base64
import collections
import functools
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece

from attnlab.choices import check_choice
from attnlab.specials import BOS, EOS, NUM_SPECIALS, PAD, SPECIAL_TOKENS, UNK

TOKENIZERS = ("char", "space", "sentencepiece")
_FORMAT = "attnlab-vocab-1"


class Vocab:
    """A fixed token list with the special ids first; see the module docstring."""

    def __init__(
        self, tokens: Sequence[str], *, tokenizer: str = "char", spm_model: bytes | None = None
    ) -> None:
        check_choice("tokenizer", tokenizer, TOKENIZERS)
        if (tokenizer == "sentencepiece") != (spm_model is not None):
            raise ValueError("a sentencepiece Vocab needs spm_model, and only it takes one")
        tokens = list(tokens)
        clash = sorted(set(tokens) & set(SPECIAL_TOKENS))
        if clash or len(set(tokens)) != len(tokens):
            raise ValueError(f"vocabulary tokens must be unique and not special; got {clash}")
        self.tokenizer = tokenizer
        self.tokens = tuple(SPECIAL_TOKENS) + tuple(tokens)
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self._spm_model = spm_model
        self._spm = None
        if spm_model is not None:
            self._spm = sentencepiece.SentencePieceProcessor(model_proto=spm_model)
            pieces = [self._spm.id_to_piece(i) for i in range(self._spm.get_piece_size())]
            if tuple(pieces) != self.tokens:
                raise ValueError("spm_model pieces do not match the vocabulary tokens")

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocab)
            and self.tokens == other.tokens
            and self.tokenizer == other.tokenizer
            and self._spm_model == other._spm_model
        )

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, tokenizer={self.tokenizer!r})"

    # --- tokens <-> ids -------------------------------------------------------------------
    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; a token outside the vocabulary becomes ``UNK``."""
        ids = self._ids
        return [ids.get(t, UNK) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` up to the first ``EOS``, without ``PAD`` and ``BOS``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIAL_TOKENS[UNK])
        return out

    # --- letter case ---------------------------------------------------------------------
    @functools.cached_property
    def case(self) -> str | None:
        """``"lower"`` or ``"upper"`` when every cased letter of the tokens has that case."""
        letters = {
            c for token in self.tokens[NUM_SPECIALS:] for c in token if c.lower() != c.upper()
        }
        if letters and all(c == c.lower() for c in letters):
            return "lower"
        if letters and all(c == c.upper() for c in letters):
            return "upper"
        return None

    def fold_case(self, text: str) -> str:
        """``text`` in the vocabulary's one case (unchanged when it has both or none)."""
        if self.case == "lower":
            return text.lower()
        if self.case == "upper":
            return text.upper()
        return text

    # --- text <-> tokens ------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        if self.tokenizer == "char":
            return list(text)
        if self.tokenizer == "space":
            return text.split()
        return self._spm.encode(text, out_type=str)

    def detokenize(self, tokens: Sequence[str]) -> str:
        if self.tokenizer == "char":
            return "".join(tokens)
        if self.tokenizer == "space":
            return " ".join(tokens)
        return self._spm.decode_pieces(list(tokens))

    def encode_text(self, text: str) -> list[int]:
        return self.encode(self.tokenize(text))

    def decode_text(self, ids: Iterable[int]) -> str:
        return self.detokenize(self.decode(ids))

    # --- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically: a temp file, then a rename)."""
        record = {"format": _FORMAT, "tokenizer": self.tokenizer, "tokens": self.tokens[5:]}
        if self._spm_model is not None:
            record["spm_model"] = base64.b64encode(self._spm_model).decode("ascii")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=0), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        if record.get("format") != _FORMAT:
            raise ValueError(f"{path} is not an attnlab vocabulary (format {_FORMAT})")
        model = record.get("spm_model")
        model = None if model is None else base64.b64decode(model)
        return cls(record["tokens"], tokenizer=record["tokenizer"], spm_model=model)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], *, tokenizer: str) -> Vocab:
        """Every token seen in ``token_lists``, most frequent first, ties by the token."""
        counts = collections.Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return cls.from_counts(counts, tokenizer=tokenizer)

    @classmethod
    def from_counts(cls, counts: collections.Counter, *, tokenizer: str) -> Vocab:
        """Every counted token, most frequent first, ties by the token (specials left out)."""
        ordered = sorted(
            (t for t in counts if t not in SPECIAL_TOKENS), key=lambda t: (-counts[t], t)
        )
        return cls(ordered, tokenizer=tokenizer)

    @classmethod
    def train_sentencepiece(cls, texts: Iterable[str], *, vocab_size: int) -> Vocab:
        """A unigram SentencePiece model over ``texts`` with our special ids, as a Vocab.

        ``vocab_size`` is an upper bound: a small corpus gets fewer pieces rather than an error.
        Text is not normalized, so decoding gives back exactly the text that was encoded
        whenever every character was seen in training.
        """
        if vocab_size <= NUM_SPECIALS:
            raise ValueError(f"spm_vocab_size must be > {NUM_SPECIALS}, got {vocab_size}")
        buffer = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(t for t in texts if t.strip()),
            model_writer=buffer,
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type="unigram",
            character_coverage=1.0,
            normalization_rule_name="identity",  # lossless: no NFKC, keep every space
            remove_extra_whitespaces=False,
            pad_id=PAD,
            bos_id=BOS,
            eos_id=EOS,
            unk_id=UNK,
            pad_piece=SPECIAL_TOKENS[PAD],
            bos_piece=SPECIAL_TOKENS[BOS],
            eos_piece=SPECIAL_TOKENS[EOS],
            unk_piece=SPECIAL_TOKENS[UNK],
            user_defined_symbols=[SPECIAL_TOKENS[4]],
            num_threads=1,
            minloglevel=2,
        )
        model = buffer.getvalue()
        processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        return cls(pieces[NUM_SPECIALS:], tokenizer="sentencepiece", spm_model=model)
