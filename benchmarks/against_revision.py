r"""This tree against an older revision of ``src/attnlab``, side by side in one process.

    python benchmarks/against_revision.py --rev=a07114c           # about 10 min, 2 cores
    python benchmarks/against_revision.py --rev=a07114c --quick   # about 3 min

A refactoring should keep the speed it found. On a machine shared with other jobs, timings
taken minutes apart do not compare, so both versions run in the same process and are timed
in the same repetitions, interleaved (``common.interleaved_times``). The revision's
``src/attnlab`` is extracted with ``git archive`` into a temporary directory as the package
``attnlab_rev`` (its imports rewritten) and imported beside ``attnlab``. Both build the
``g2p.py`` models from the same seeds, so their weights are equal, and time:

- decoding at batch 1, per word (``--words`` random words of 4 to 12 letters, decoded one at
  a time from their padded source, as ``benchmarks/decoding.py`` does without a trained
  run): AT greedy and beam 4 forced to emit one token per letter plus the EOS, NAT
  ``length_pred`` and ``oracle_length``;
- the ``g2p.py:at`` train step on one synthetic batch (``common.synthetic_batch``, bucket
  ``--length``), and this tree's step with the CPU cotangent buffer switched off, whose
  ratio to the buffered step is what the buffer buys.

Every figure is a ratio of this tree's time to the revision's (or, for the buffer, of the
unbuffered step to the buffered one): the median over repetitions, with the quartiles.
Outputs of the two versions are compared too: the same tokens from every decoder, the same
loss from the train step, and whether the two train steps lower to the same program
(StableHLO text without source locations).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from flax import nnx  # noqa: E402

import attnlab  # noqa: E402
from attnlab.train import steps as new_steps  # noqa: E402
from benchmarks import common  # noqa: E402

REVISION_PACKAGE = "attnlab_rev"
MAX_LEN = 32  # g2p sources and targets, with the EOS


@contextlib.contextmanager
def revision_package(rev: str) -> Iterator[Any]:
    """``attnlab`` as it was at git revision ``rev``, importable as ``attnlab_rev``.

    The revision's ``experiments/configs`` come with it, their imports rewritten the same
    way, in the directory ``package.configs_dir``. Its data package is imported without
    registering its TFDS builders: ours hold the same names (TFDS refuses a second one).
    """
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src/attnlab", "experiments/configs"],
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        package = Path(tmp) / REVISION_PACKAGE
        (Path(tmp) / "src" / "attnlab").rename(package)
        configs = Path(tmp) / "experiments" / "configs"
        pattern = re.compile(r"\b(from|import) attnlab\b")
        for path in [*package.rglob("*.py"), *configs.glob("*.py")]:
            path.write_text(pattern.sub(rf"\1 {REVISION_PACKAGE}", path.read_text()))
        sys.path.insert(0, tmp)
        try:
            module = importlib.import_module(REVISION_PACKAGE)
            with tfds.core.registered.skip_registration():
                importlib.import_module(f"{REVISION_PACKAGE}.data")
            module.configs_dir = configs
            yield module
        finally:
            sys.path.remove(tmp)
            for name in [m for m in sys.modules if m.split(".")[0] == REVISION_PACKAGE]:
                del sys.modules[name]  # a later revision_package imports afresh


def module(package: Any, *names: str) -> Any:
    """The first of ``package``'s modules ``names`` that it has (a name moved since ``rev``)."""
    for name in names[:-1]:
        try:
            return importlib.import_module(f"{package.__name__}.{name}")
        except ModuleNotFoundError:
            continue
    return importlib.import_module(f"{package.__name__}.{names[-1]}")


def models(package: Any, variant: str, seed: int) -> Any:
    """A fresh ``g2p.py:<variant>`` model built by ``package`` (the same weights for a seed)."""
    config = common.g2p_config(variant)
    build_model = module(package, "train.models", "nn").build_model
    return build_model(ml_collections.ConfigDict(config.model.to_dict()), rngs=nnx.Rngs(seed))


def random_words(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` sources [1, MAX_LEN] of 4..12 random letters (ids 5..32), right-padded."""
    rng = np.random.default_rng(seed)
    words = []
    for _ in range(count):
        src = np.zeros((1, MAX_LEN), np.int32)
        n = int(rng.integers(4, 13))
        src[0, :n] = rng.integers(5, common.G2P_VOCAB[0], n)
        words.append(src)
    return words


def decoders(package: Any, at: Any, nat: Any) -> dict[str, Any]:
    """The four batch-1 decoders of ``package``: ``word -> tokens``."""
    at_mod = importlib.import_module(f"{package.__name__}.decode.at")
    nat_mod = module(package, "nat.decoding", "decode.nat")
    latency = importlib.import_module(f"{package.__name__}.analysis.latency")
    if hasattr(latency, "forced_at_decoder"):  # forcing the length lives in analysis (#35)
        forced = {m: latency.forced_at_decoder(at, m, max_len=MAX_LEN, length_penalty=0.6)
                  for m in ("greedy", "beam:4")}  # fmt: skip
        greedy = lambda src, n: (forced["greedy"](src, n).tokens,)  # noqa: E731
        beam = lambda src, n: (forced["beam:4"](src, n).tokens,)  # noqa: E731
    else:  # an older revision: at_searcher forced it
        greedy = at_mod.at_searcher(at, method="greedy", max_len=MAX_LEN)
        beam = at_mod.at_searcher(at, method="beam", beam_size=4, max_len=MAX_LEN)
    length_pred = nat_mod.nat_decoder(nat, "length_pred", max_len=MAX_LEN)
    oracle = nat_mod.nat_decoder(nat, "oracle_length", max_len=MAX_LEN)

    def length(src):  # one output token per letter, then the EOS
        return np.array([int(np.sum(src != 0)) + 1])

    return {
        "at_greedy": lambda src: greedy(src, length(src))[0],
        "at_beam4": lambda src: beam(src, length(src))[0],
        "nat_length_pred": lambda src: length_pred(src).tokens,
        "nat_oracle_length": lambda src: oracle(src, length(src)).tokens,
    }


def compare_decoding(rev: Any, words: list[np.ndarray], repeats: int, min_seconds: float):
    at_new, nat_new = models(attnlab, "at", 0), models(attnlab, "nat", 1)
    at_old, nat_old = models(rev, "at", 0), models(rev, "nat", 1)
    new, old = decoders(attnlab, at_new, nat_new), decoders(rev, at_old, nat_old)
    rows = []
    for system in new:
        for src in words:  # same outputs, word by word
            np.testing.assert_array_equal(new[system](src), old[system](src))

        def all_words(decode=None, system=system):
            return [decode[system](src) for src in words][-1]

        times = common.interleaved_times(
            {"old": lambda: all_words(old), "new": lambda: all_words(new)},
            repeats,
            warmup=1,
            min_seconds=min_seconds,
        )
        ratio = common.paired_ratio(times["new"], times["old"])
        rows.append(
            {
                "measure": f"{system}, ms per word",
                "old": float(np.median(times["old"])) * 1e3 / len(words),
                "new": float(np.median(times["new"])) * 1e3 / len(words),
                **ratio,
            }
        )
    return rows


def compare_training(rev: Any, length: int, repeats: int, min_seconds: float):
    config = common.g2p_config("at")
    batch = common.synthetic_batch(0, config.batch_size, length, common.G2P_VOCAB)
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    one = jnp.asarray(1, jnp.int32)
    rev_resolve = importlib.import_module(f"{rev.__name__}.train.resolve")
    rev_steps = importlib.import_module(f"{rev.__name__}.train.steps")

    texts: list[str] = []  # the lowered programs, without locations and package names

    def compiled(resolve, steps, buffered=True):
        graphdef, state, optimizer = resolve.create_train_state(config)
        step = steps.make_train_step(graphdef, optimizer, config)
        with contextlib.ExitStack() as stack:
            if not buffered:  # this tree's switch: the step asks buffer_residual_gradients
                original = new_steps.buffer_residual_gradients
                new_steps.buffer_residual_gradients = lambda model: None
                stack.callback(setattr, new_steps, "buffer_residual_gradients", original)
            lowered = step.lower(state, batch, one)
            program = lowered.compile()
        texts.append(re.sub(r"loc\([^)]*\)|#loc\d*|attnlab\w*", "", lowered.as_text()))
        holder = {"state": state}
        losses = []

        def run():  # the step donates its state: carry it on
            holder["state"], metrics = program(holder["state"], batch, one)
            losses.append(metrics["loss"])
            return metrics

        return run, losses

    from attnlab.train import resolve as new_resolve

    contenders = {
        "old": compiled(rev_resolve, rev_steps),
        "new": compiled(new_resolve, new_steps),
        "new_unbuffered": compiled(new_resolve, new_steps, buffered=False),
    }
    times = common.interleaved_times(
        {name: run for name, (run, _) in contenders.items()},
        repeats,
        warmup=2,
        min_seconds=min_seconds,
    )
    first = {name: float(losses[0]) for name, (_, losses) in contenders.items()}
    if not np.allclose(list(first.values()), first["old"], rtol=1e-5):
        raise AssertionError(f"first-step losses differ: {first}")
    medians = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    same = "the same program" if texts[0] == texts[1] else "different programs"
    return [
        {
            "measure": f"train step g2p.py:at, S=T={length}, ms ({same})",
            "old": medians["old"],
            "new": medians["new"],
            **common.paired_ratio(times["new"], times["old"]),
        },
        {
            "measure": "train step without / with the cotangent buffer (this tree)",
            "old": medians["new"],
            "new": medians["new_unbuffered"],
            **common.paired_ratio(times["new_unbuffered"], times["new"]),
        },
    ]


COLUMNS = [(k, k) for k in ("measure", "old", "new", "median", "q25", "q75")]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--rev", required=True, help="git revision to compare against")
    parser.add_argument("--quick", action="store_true", help="fewer words and repetitions")
    parser.add_argument("--words", type=int, default=0, help="words per decoding repetition")
    parser.add_argument("--repeats", type=int, default=0, help="least repetitions")
    parser.add_argument("--length", type=int, default=12, help="train step bucket length")
    parser.add_argument(
        "--parts", default="decoding,training", help="what to compare: decoding, training or both"
    )
    args = parser.parse_args(argv)
    words = args.words or (10 if args.quick else 30)
    repeats = args.repeats or (5 if args.quick else 15)
    parts = set(args.parts.split(","))
    if not parts or parts - {"decoding", "training"}:
        parser.error(f"--parts {args.parts!r}; valid: decoding, training (comma-separated)")
    rows = []
    with revision_package(args.rev) as rev:
        if "decoding" in parts:
            rows += compare_decoding(rev, random_words(words), repeats, min_seconds=0.0)
        if "training" in parts:
            rows += compare_training(rev, args.length, repeats, min_seconds=0.0)
    print(f"this tree / {args.rev} (ratios: new time / old time; 1 = the same speed)")
    print(common.format_table(rows, COLUMNS))
    return rows


if __name__ == "__main__":
    main()
