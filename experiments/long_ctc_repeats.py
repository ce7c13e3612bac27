r"""Are a `copy` model's errors the merged adjacent repeats? (The `synthetic,long` CTC study.)

    python experiments/long_ctc_repeats.py --workdir=runs/long/nat_ctc

Decodes 256 random sources of 1-64 of the task's symbols (seed 0) with the model's default
decoding and sorts the outputs into: exact; every adjacent repeat merged (``a a b`` -> ``a b``:
what CTC's collapse does to a canvas that never puts a blank between two copies); differing
only in runs of one symbol (some repeats merged, or a symbol doubled); other. A model that errs only where the source repeats a symbol gets every source
without a repeat right.
"""

from __future__ import annotations

import itertools
import random

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A `synthetic,long` model's training workdir.")
_N = flags.DEFINE_integer("n", 256, "Random sources to decode.")
flags.mark_flags_as_required(["workdir"])


def _merged(tokens: list[str]) -> list[str]:
    return [k for k, _ in itertools.groupby(tokens)]


def main(argv):
    del argv
    import attnlab
    from attnlab.data.builders.synthetic_seq2seq import symbols

    model = attnlab.load(_WORKDIR.value)
    names = symbols(int(model.config.data.synthetic_vocab_size))
    rng = random.Random(0)
    lo, hi = (
        int(model.config.data.synthetic_min_length),
        int(model.config.data.synthetic_max_length),
    )
    sources = [[rng.choice(names) for _ in range(rng.randint(lo, hi))] for _ in range(_N.value)]
    outputs = model.predict([" ".join(s) for s in sources])
    counts = dict.fromkeys(("exact", "all_repeats_merged", "only_runs_differ", "other"), 0)
    plain = plain_exact = 0
    for source, out in zip(sources, outputs, strict=True):
        hyp, ref = list(out.tokens), source
        kind = (
            "exact"
            if hyp == ref
            else "all_merged"
            if hyp == _merged(ref)
            else "some_merged"
            if _merged(hyp) == _merged(ref)
            else "other"
        )
        counts[kind] += 1
        if _merged(ref) == ref:
            plain += 1
            plain_exact += hyp == ref
    print(f"{_N.value} sources: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"sources without an adjacent repeat: {plain}, exact {plain_exact}")


if __name__ == "__main__":
    app.run(main)
