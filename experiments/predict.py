r"""Use a trained model: one prediction per input line.

    python experiments/predict.py --workdir=runs/demo/at --input=attention     # make demo's AT
    printf 'hello\nworld\n' | python experiments/predict.py --workdir=runs/demo/nat \
        --decode=length_beam:3
    python experiments/predict.py --workdir=runs/address --input=广东省深圳市南山区科技路128号

It restores the newest checkpoint of a training workdir (or --step=N) and prints, per line:
G2P (any seq2seq model, AT or NAT): the output tokens (phonemes); the address tagger: the
text cut into typed pieces (`广东省/province 深圳市/city ...`), or with --tags the tag of every
character; the classifier: the class's label name. --decode picks the decoding of a seq2seq
model (AT: greedy, beam:K; NAT: the strategies its training supports); the default is the
one its config evaluated with. Where the vocabulary has one letter case (G2P: lower), the input
is put into it, and one note on stderr says so.

Bad input exits with status 2 and one line on stderr, before anything is printed: an empty
line, a line longer than the model's max_len, characters outside the vocabulary (named; with
--unknown=unk they are read as <unk> instead, with a warning per line), a workdir with no
checkpoint, a directory that is not a training workdir (one that holds training workdirs,
as `make demo`'s runs/demo, names them), an unsupported --decode.
The same in Python: `attnlab.load(workdir).predict(texts, decode=None)`.
"""

from __future__ import annotations

import logging as std_logging
import sys
from collections.abc import Sequence

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (config.json, checkpoints/).")
_INPUT = flags.DEFINE_string("input", None, "One input text; without it, one per stdin line.")
_DECODE = flags.DEFINE_string(
    "decode", None, "Seq2seq decoding: greedy | beam:K (AT), a NAT strategy (NAT)."
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_UNKNOWN = flags.DEFINE_enum(
    "unknown", "error", ["error", "unk"], "Out-of-vocabulary characters: refuse, or read as <unk>."
)
_TAGS = flags.DEFINE_bool("tags", False, "Tagger: print the tag of every token, not the spans.")
flags.mark_flags_as_required(["workdir"])

PROG = "predict.py"


def _texts() -> list[str]:
    if _INPUT.value is not None:
        return [_INPUT.value]
    return sys.stdin.read().splitlines()


def main(argv: Sequence[str]) -> None:
    del argv
    from attnlab.inference import InputError, load
    from attnlab.train.cli import fail

    # stdout holds the predictions and stderr one line per problem: no INFO logs, and no
    # orbax warnings about opening the checkpoints read-only (they are, on purpose).
    logging.set_verbosity(logging.WARNING)
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= std_logging.ERROR or "/orbax/" not in r.pathname
    )
    texts = _texts()
    where = "--input" if _INPUT.value is not None else "line {}"
    if not texts:
        fail(PROG, "no input: give --input=TEXT or lines on stdin")
    try:
        predictor = load(_WORKDIR.value, step=_STEP.value)
        if _TAGS.value and predictor.kind != "tagger":
            fail(PROG, f"--tags applies to a tagger; this model is a {predictor.kind}")
        results = predictor.predict(texts, decode=_DECODE.value, unknown=_UNKNOWN.value)
    except InputError as err:
        hint = "; --unknown=unk reads them as <unk>" if err.unknown else ""
        more = f" (and {err.bad - 1} more bad lines)" if err.bad > 1 else ""
        fail(PROG, f"{where.format(err.index + 1)}: {err.problem}{hint}{more}")
    except (ValueError, FileNotFoundError) as err:
        logging.debug("traceback of the error below", exc_info=True)
        fail(PROG, err)
    folded = [i for i, result in enumerate(results) if result.case_folded]
    if folded:
        lines = "" if _INPUT.value is not None else f" ({len(folded)} of {len(results)} lines)"
        print(
            f"{PROG}: note: input{lines} {results[folded[0]].case_folded}-cased to match the "
            "vocabulary",
            file=sys.stderr,
        )
    for i, result in enumerate(results):
        if result.unknown:
            listed = ", ".join(repr(t) for t in result.unknown)
            print(
                f"{PROG}: warning: {where.format(i + 1)}: {listed} not in the vocabulary, "
                "read as <unk>",
                file=sys.stderr,
            )
        print(" ".join(result.tags) if _TAGS.value and hasattr(result, "tags") else result)


def _parse_flags(argv: list[str]) -> list[str]:
    from attnlab.train.cli import parse_flags

    return parse_flags(argv, None, prog=PROG)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
