r"""Decoding at batch 1: KV-cache step cost, cache against no cache, NAT against AT.

    python benchmarks/decoding.py                      # fresh g2p-shaped models; 1-2 min
    python benchmarks/decoding.py --run_dir=runs/g2p   # the trained AT and NAT of that run
    python benchmarks/decoding.py --quick              # fewer words and repetitions
    python benchmarks/decoding.py --long_run_dir=runs/long   # trained long-output models

The measured figures are in docs/decoding_cost.md.

Issue 8, benchmark 4. Models of the ``experiments/configs/g2p.py:at`` / ``:nat`` shape
(d_model 192, 4 heads, d_ff 768, 3+3 layers), jitted, fp32, batch 1. Three targets:

1. ``flat``: the time of one cached decoder step (``Seq2Seq.decode_step``) at position 128
   over the time at position 8 is at most 1.2. A contender runs ``--loop_steps`` steps at
   the same position inside one jitted ``fori_loop`` (the index reset after every step, the
   K/V buffers updated in place as in a decode loop), so dispatch is not what is timed. The
   self-attention buffers hold ``--cache_len`` positions, random up to the position.
2. ``cache``: a greedy decode of ``--decode_length`` tokens recomputing the decoder over the
   whole prefix buffer at every step (``use_cache=False``: all ``--decode_length`` positions,
   static shapes, where a prefix-only recompute would average half of them) against the KV
   cache; at least 5x. EOS is forbidden, so both decode exactly that many tokens; a fresh AT
   model, both buffers ``--decode_length`` long.
3. ``nat``: per-word latency of NAT ``length_pred`` against AT beam 4 (and greedy) on
   ``--words`` G2P test words (cmudict_g2p test split, evenly spaced), each decoded alone
   from the padded source to the stripped token list through
   ``attnlab.analysis.systems.make_decoder``, as the AT-vs-NAT experiment times it. Gu et al.
   2018 report 15.6x against beam 4; target at least 10x. With ``--run_dir`` (an AT-vs-NAT
   workdir holding ``at/`` and ``nat/``) the trained models decode at their own lengths;
   without it the models are freshly initialized: the AT is forced to emit exactly the
   reference length and the target is read on the NAT's ``oracle_length`` (the same
   reference length), since an untrained length head picks arbitrary lengths; its
   ``length_pred`` is shown beside it.

Every ratio is the median over interleaved repetitions (``common.interleaved_times``). Two
more tables are the profile evidence. ``parts``: an encoder pass, the NAT decoder pass and
one cached AT step at batch 1 and 4, for an 8-letter word, and the AT-beam-4 / NAT ratio
they allow at the mean output length (``measure_parts``). ``dispatch``: the cost of a jitted
no-op taking the model as the old decoders passed it (an ``nnx.State`` plus a static
``GraphDef``) and as they pass it now (one tuple of arrays). 4. ``decoding_vs_length``
(``benchmarks/decoding_length.py``, issue 17): latency per sequence against output length
(8-64 tokens, batch 1 and 64) for AT, deep-shallow AT and the one-pass NATs; target: the
fastest NAT at least 10x AT beam 4 at 64 tokens, batch 1. The figures go into the
``decoding`` section of ``benchmarks/results.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from benchmarks.decoding_parts import steps_at  # noqa: E402
from flax import nnx  # noqa: E402

from attnlab.analysis.latency import forced_at_decoder, timing_decoder  # noqa: E402
from attnlab.analysis.systems import make_decoder, valid_rows, warm_up  # noqa: E402
from attnlab.data import make_eval_batches  # noqa: E402
from attnlab.decode.compiled import jit_model  # noqa: E402
from attnlab.specials import strip  # noqa: E402
from attnlab.train.config import load_config_file  # noqa: E402
from attnlab.train.models import build_model  # noqa: E402
from benchmarks import common, decoding_length, decoding_parts  # noqa: E402

SECTION = "decoding"
FLAT_TARGET = 1.2  # step time at the last position / at the first, at most
CACHE_TARGET = 5.0  # no-cache time / cache time, at least
NAT_TARGET = 10.0  # AT beam 4 time / NAT time, at least
GU_ET_AL_2018 = 15.6  # their NAT (no NPD) against AT beam 4, WMT En-De, GPU
G2P_CONFIG = ROOT / "experiments" / "configs" / "g2p.py"


def g2p_config(variant: str, data_dir: str = "") -> ml_collections.ConfigDict:
    """``experiments/configs/g2p.py:<variant>``, resolved as training resolves it."""
    from attnlab.train.resolve import resolve_config

    config = load_config_file(f"{G2P_CONFIG}:{variant}")
    if data_dir:
        config.data.data_dir = data_dir
    return resolve_config(config)[0]


def load_models(run_dir: Path | None) -> tuple[Any, Any, ml_collections.ConfigDict]:
    """(AT, NAT, the AT's config): restored from ``run_dir`` or freshly initialized."""
    if run_dir is None:
        at_config, nat_config = g2p_config("at"), g2p_config("nat")
        at = build_model(at_config.model, rngs=nnx.Rngs(0))
        return at, build_model(nat_config.model, rngs=nnx.Rngs(1)), at_config
    from attnlab.train import restore_model

    for key in ("at", "nat"):
        if not (run_dir / key / "config.json").is_file():
            raise SystemExit(f"--run_dir: {run_dir / key} is not a training workdir")
    at, at_config = restore_model(run_dir / "at")
    return at, restore_model(run_dir / "nat")[0], at_config


def fresh_at(at_config: ml_collections.ConfigDict, max_len: int) -> Any:
    """A freshly initialized AT of the config's shape whose positions reach ``max_len``."""
    cfg = ml_collections.ConfigDict(at_config.model.to_dict())
    cfg.max_len = max(max_len, cfg.max_len)  # the sources need the config's positions too
    return build_model(cfg, rngs=nnx.Rngs(2))


# -- 1. per-token latency over positions ------------------------------------------------------
def measure_flat(at_config, positions, cache_len, loop_steps, repeats, min_seconds):
    model = fresh_at(at_config, cache_len)
    src = jnp.asarray(np.arange(8)[None] % 20 + 5, jnp.int32)
    cache = model.init_cache(src, cache_len)
    rng = np.random.default_rng(0)
    caches = {}
    for pos in positions:
        layers = []
        for layer in cache["layers"]:
            kv = {}
            for name, buf in layer["self"].items():
                values = rng.standard_normal(buf.shape, np.float32)
                values[:, pos:] = 0.0  # positions not reached yet
                kv[name] = jnp.asarray(values)
            layers.append({**layer, "self": kv})
        caches[pos] = {**cache, "layers": layers, "index": jnp.full((1,), pos, jnp.int32)}
    run = jit_model(steps_at, model, steps=loop_steps)
    tokens = jnp.full((1,), 7, jnp.int32)
    times = common.interleaved_times(
        {pos: (lambda c=c: run(tokens, c)) for pos, c in caches.items()},
        repeats,
        min_seconds=min_seconds,
    )
    first = positions[0]
    rows = []
    for pos in positions:
        ratio = common.paired_ratio(times[pos], times[first])
        rows.append(
            {
                "position": pos,
                "step_ms": float(np.median(times[pos])) / loop_steps * 1e3,
                f"vs_pos{first}": ratio["median"],
                "q25": ratio["q25"],
                "q75": ratio["q75"],
                "repeats": len(times[pos]),
            }
        )
    return rows


# -- 2. cache against no cache -------------------------------------------------------------
def measure_cache(at_config, src, length, repeats, min_seconds):
    model = fresh_at(at_config, length)
    never = np.full((1,), length + 1, np.int32)  # EOS would come after max_len: never
    searches = {
        name: forced_at_decoder(model, "greedy", max_len=length, length_penalty=0.6, use_cache=use)
        for name, use in (("cache", True), ("no_cache", False))
    }
    outputs = {name: np.asarray(search(src, never).tokens) for name, search in searches.items()}
    times = common.interleaved_times(
        {name: (lambda s=s: s(src, never).tokens) for name, s in searches.items()},
        repeats,
        min_seconds=min_seconds,
    )
    ratio = common.paired_ratio(times["no_cache"], times["cache"])
    return {
        "decode_length": length,
        "cache_ms": float(np.median(times["cache"])) * 1e3,
        "no_cache_ms": float(np.median(times["no_cache"])) * 1e3,
        "ratio": ratio["median"],
        "q25": ratio["q25"],
        "q75": ratio["q75"],
        "tokens_decoded": int(np.sum(outputs["cache"] != 0)),
        "same_tokens": bool(np.array_equal(outputs["cache"], outputs["no_cache"])),
        "repeats": len(times["cache"]),
    }


# -- 3. NAT against AT on G2P words ----------------------------------------------------------
def test_words(data_config, count: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """``count`` evenly spaced test words as batch-1 ``(src, ref_lengths)``; the decode length."""
    batches = make_eval_batches(data_config, "test", batch_size=256)
    inputs, targets = valid_rows(batches, "inputs"), valid_rows(batches, "targets")
    picks = np.linspace(0, len(inputs) - 1, min(count, len(inputs))).round().astype(int)
    words = [
        (np.asarray(inputs[i])[None], np.sum(np.asarray(targets[i]) != 0, keepdims=True))
        for i in picks
    ]
    return [(src, ref.astype(np.int32)) for src, ref in words], int(batches[0]["targets"].shape[1])


def measure_systems(at, nat, at_config, words, max_len, fresh, repeats, min_seconds):
    settings = dict(max_len=max_len, length_penalty=float(at_config.length_penalty))
    systems = {
        "at_greedy": timing_decoder(at, "greedy", forced=fresh, **settings),
        "at_beam4": timing_decoder(at, "beam:4", forced=fresh, **settings),
        "nat_length_pred": make_decoder(nat, "length_pred", **settings),
        "nat_oracle_length": make_decoder(nat, "oracle_length", **settings),
    }
    lengths = {}
    for name, decode in systems.items():
        warm_up(decode, words)
        lengths[name] = float(np.mean([len(strip(np.asarray(decode(*w)[0])[0])) for w in words]))

    def decode_all(decode):
        for src, ref in words:
            strip(np.asarray(decode(src, ref)[0])[0])

    times = common.interleaved_times(
        {name: (lambda d=d: decode_all(d)) for name, d in systems.items()},
        repeats,
        min_seconds=min_seconds,
    )
    rows = []
    for name in systems:
        beam = common.paired_ratio(times["at_beam4"], times[name])
        rows.append(
            {
                "system": name,
                "ms_per_word": float(np.median(times[name])) / len(words) * 1e3,
                "mean_tokens": lengths[name],
                "beam4_over": beam["median"],
                "q25": beam["q25"],
                "q75": beam["q75"],
                "greedy_over": common.paired_ratio(times["at_greedy"], times[name])["median"],
                "repeats": len(times[name]),
            }
        )
    ref_tokens = float(np.mean([int(ref[0]) - 1 for _, ref in words]))
    return rows, ref_tokens


def targets(flat_rows, cache_row, system_rows, fresh: bool) -> dict[str, dict[str, Any]]:
    """The three targets: what is measured, the bound, the figure, met or not."""
    first, last = flat_rows[0], flat_rows[-1]
    nat_name = "nat_oracle_length" if fresh else "nat_length_pred"
    nat = next(row for row in system_rows if row["system"] == nat_name)
    flat = last[f"vs_pos{first['position']}"]
    found = {
        "flat": (f"cached step, position {last['position']} / {first['position']}", "<=", flat),
        "cache": (
            f"greedy {cache_row['decode_length']} tokens, no cache / cache",
            ">=",
            cache_row["ratio"],
        ),
        "nat": (f"per word, AT beam 4 / {nat_name}", ">=", nat["beam4_over"]),
    }
    bounds = {"flat": FLAT_TARGET, "cache": CACHE_TARGET, "nat": NAT_TARGET}
    out = {}
    for name, (what, sign, figure) in found.items():
        bound = bounds[name]
        out[name] = {
            "measure": what,
            "target": f"{sign} {bound:g}",
            "figure": figure,
            "met": figure <= bound if sign == "<=" else figure >= bound,
        }
    return out


TARGET_COLUMNS = [(key, key) for key in ("measure", "figure", "target", "met")]


def length_run(args, argv) -> dict[str, Any]:
    """How the decoding_vs_length rows were measured."""
    long_dir = args.long_run_dir
    return {
        "command": common.command_line(__file__, argv),
        "machine": common.machine_info(),
        "mode": f"trained: {long_dir}"
        if long_dir
        else "fresh models, forced to the reference length",
    }


def length_only(args, argv, repeats: int, min_seconds: float) -> dict[str, Any]:
    """``--length_only``: re-measure decoding_vs_length, keep the section's other figures."""
    by_length, headline = decoding_length.measure(
        args.long_run_dir, args.lengths, args.length_batches, repeats, min_seconds / 4
    )
    print(common.format_table(by_length, [(k, k) for k in by_length[0]]), flush=True)
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    section = results.get(SECTION, {"headline": []})
    section["decoding_vs_length"] = by_length
    section["decoding_vs_length_run"] = length_run(args, argv)
    old = [e for e in section["headline"] if "tokens, AT beam 4" not in e["name"]]
    run = section["decoding_vs_length_run"]
    headline.update(command=run["command"], date=run["machine"]["date"])
    section["headline"] = [*old, headline]
    print(f"{headline['name']}: {headline['value']:.2f} (target {headline['target']})")
    common.write_section(SECTION, section, args.results)
    return section


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its section; returns the section."""
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--run_dir", type=Path, default=None, help="AT-vs-NAT workdir")
    parser.add_argument("--positions", type=common.int_list, default=[8, 32, 128])
    parser.add_argument("--cache_len", type=int, default=256, help="KV buffer of target 1")
    parser.add_argument("--loop_steps", type=int, default=32, help="steps per timed call")
    parser.add_argument("--decode_length", type=int, default=64)
    parser.add_argument("--words", type=int, default=0, help="0: 100, or 30 with --quick")
    parser.add_argument(
        "--long_run_dir", type=Path, default=None, help="at_vs_nat.py:synthetic,long workdir"
    )
    parser.add_argument("--lengths", type=common.int_list, default=[8, 16, 32, 64])
    parser.add_argument("--length_batches", type=common.int_list, default=[1, 64])
    parser.add_argument(
        "--length_only",
        action="store_true",
        help="measure only decoding_vs_length and update it in the existing section",
    )
    args = parser.parse_args(argv)
    if args.cache_len <= max(args.positions):
        parser.error(f"--cache_len {args.cache_len} must exceed the positions {args.positions}")
    repeats = args.repeats or (3 if args.quick else 9)
    min_seconds = args.min_seconds if args.min_seconds >= 0 else (2.0 if args.quick else 6.0)
    if args.length_only:
        return length_only(args, argv, repeats, min_seconds)
    fresh = args.run_dir is None
    mode = "fresh models, AT forced to reference lengths" if fresh else f"trained: {args.run_dir}"
    print(f"mode: {mode}", flush=True)

    at, nat, at_config = load_models(args.run_dir)
    words, max_len = test_words(at_config.data, args.words or (30 if args.quick else 100))
    flat_rows = measure_flat(
        at_config, args.positions, args.cache_len, args.loop_steps, repeats, min_seconds
    )
    print(common.format_table(flat_rows, [(k, k) for k in flat_rows[0]]), flush=True)
    cache_row = measure_cache(at_config, words[0][0], args.decode_length, repeats, min_seconds)
    print(common.format_table([cache_row], [(k, k) for k in cache_row]), flush=True)
    system_rows, ref_tokens = measure_systems(
        at, nat, at_config, words, max_len, fresh, repeats, min_seconds
    )
    print(common.format_table(system_rows, [(k, k) for k in system_rows[0]]), flush=True)
    print(f"{len(words)} words, {ref_tokens:.2f} reference tokens per word (without EOS)")
    parts = decoding_parts.measure_parts(
        at, nat, 8, max_len, ref_tokens + 1, args.loop_steps, repeats, min_seconds
    )
    print(common.format_table([parts], [(k, k) for k in parts]), flush=True)
    dispatch_rows = decoding_parts.measure_dispatch(at, repeats * 100, min_seconds / 2)
    print(common.format_table(dispatch_rows, [(k, k) for k in dispatch_rows[0]]))
    by_length, length_headline = decoding_length.measure(
        args.long_run_dir, args.lengths, args.length_batches, repeats, min_seconds / 4
    )
    print(common.format_table(by_length, [(k, k) for k in by_length[0]]), flush=True)

    section = {
        "description": "batch-1 decoding of g2p-shaped models: KV-cache step over positions, "
        "cache vs no cache, NAT vs AT per word (jitted, fp32, CPU)",
        "command": common.command_line(__file__, argv),
        "quick": args.quick,
        "mode": mode,
        "machine": {**common.machine_info(), "xla_flags": os.environ.get("XLA_FLAGS", "")},
        "gu_et_al_2018_nat_vs_beam4": GU_ET_AL_2018,
        "targets": targets(flat_rows, cache_row, system_rows, fresh),
        "flat": flat_rows,
        "cache": cache_row,
        "systems": system_rows,
        "reference_tokens_per_word": ref_tokens,
        "words": len(words),
        "parts": parts,
        "dispatch": dispatch_rows,
        # {system, output_length, batch, latency_ms} (+ mean_output_length, exact if trained)
        "decoding_vs_length": by_length,
        "decoding_vs_length_run": length_run(args, argv),
    }
    section["headline"] = [  # rendered into docs/performance.md by benchmarks/summary.py
        {
            "name": f"decoding b=1, {t['measure']}",
            "value": t["figure"],
            "target": t["target"],
            "met": t["met"],
        }
        for t in section["targets"].values()
    ] + [length_headline]
    print(f"mode: {mode}")
    print(common.format_table(list(section["targets"].values()), TARGET_COLUMNS))
    common.write_section(SECTION, section, args.results)
    return section


if __name__ == "__main__":
    main()
