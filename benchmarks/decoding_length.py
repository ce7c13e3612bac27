"""Latency against output length, the benchmark half of issue 17 (``benchmarks/decoding.py``).

The systems of ``experiments/configs/at_vs_nat.py:synthetic,long`` (AT greedy and beam 4, the
deep-shallow AT, and the one-pass NATs ``length_pred``, ``ctc`` and ``dag_lookahead``) decode
random ``reverse`` sources of 8, 16, 32 and 64 tokens at batch 1 and 64, side by side
(``attnlab.analysis.latency.measure_latency_vs_length``, the measurement the experiment's
report draws). With ``--long_run_dir`` (that experiment's workdir) the trained models decode
at their own lengths and each row says how many outputs were exactly right; without it the
models are freshly initialized and forced to the reference length (timing only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flax import nnx

from attnlab.analysis.latency import measure_latency_vs_length
from attnlab.analysis.systems import SYSTEMS
from attnlab.data import dataset_info
from attnlab.train.config import load_config_file
from attnlab.train.models import build_model
from attnlab.train.resolve import resolve_config

ROOT = Path(__file__).resolve().parents[1]
LONG_CONFIG = f"{ROOT / 'experiments' / 'configs' / 'at_vs_nat.py'}:synthetic,long"
RATIO_TARGET = 10.0  # AT beam 4 / the fastest one-pass NAT at 64 tokens, batch 1, at least


def long_config() -> Any:
    """The experiment config whose systems and model shapes are measured."""
    return load_config_file(LONG_CONFIG)


def load_long_models(run_dir: Path | None, config: Any) -> dict[str, Any]:
    """The models of ``config.systems`` by key: restored from ``run_dir``, or fresh."""
    systems = config.systems.split(",")
    models = {}
    for key in dict.fromkeys(SYSTEMS[s].model for s in systems):
        if run_dir is None:
            resolved = resolve_config(config[key])[0]
            models[key] = build_model(resolved.model, rngs=nnx.Rngs(len(models)))
            continue
        from attnlab.train import restore_model

        if not (run_dir / key / "config.json").is_file():
            raise SystemExit(f"--long_run_dir: {run_dir / key} is not a training workdir")
        models[key] = restore_model(run_dir / key)[0]
    return models


def measure(
    run_dir: Path | None,
    lengths: list[int],
    batches: list[int],
    repeats: int,
    min_seconds: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``decoding_vs_length`` rows and the headline ratio at the longest length."""
    config = long_config()
    config.latency_lengths, config.latency_batches = tuple(lengths), tuple(batches)
    systems = config.systems.split(",")
    models = load_long_models(run_dir, config)
    rows = measure_latency_vs_length(
        config,
        models,
        systems,
        dataset_info(config.at.data),
        fresh=run_dir is None,
        repeats=repeats,
        min_seconds=min_seconds,
    )
    longest, first = max(lengths), min(batches)
    at_b1 = {r["system"]: r for r in rows if r["output_length"] == longest and r["batch"] == first}
    nats = [s for s in systems if not s.startswith("at")]
    best = min(nats, key=lambda s: at_b1[s]["latency_ms"])
    ratio = at_b1["at_beam4"]["latency_ms"] / at_b1[best]["latency_ms"]
    headline = {
        "name": f"decoding b={first}, {longest} tokens, AT beam 4 / {best}",
        "value": ratio,
        "target": f">= {RATIO_TARGET:g}",
        "met": ratio >= RATIO_TARGET,
    }
    return rows, headline
