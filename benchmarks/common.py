"""Shared helpers of the benchmark scripts: side-by-side timing, XLA memory, results.json.

Every figure a benchmark reports is a ratio of two contenders measured in the same process,
interleaved: repetition r runs the contenders in order A, B, ... and repetition r+1 in the
reverse order, each call timed to ``jax.block_until_ready``. Load from other processes drifts
slowly compared with one repetition, so it hits both contenders of a repetition alike; the
ratio reported is the median over repetitions of the per-repetition ratio.

Memory is XLA's own account of a compiled executable (``Compiled.memory_analysis()``): the
temporary buffers it allocates besides its arguments and outputs. It needs no run, so a shape
too big for this machine can still be measured.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import platform
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from attnlab.analysis.latency import interleaved_times  # noqa: F401 - the benchmarks' timer
from attnlab.nn.config import model_config
from attnlab.specials import EOS
from attnlab.train.config import load_config_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "benchmarks" / "results.json"

AttentionFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
G2P_CONFIG = ROOT / "experiments" / "configs" / "g2p.py"
G2P_VOCAB = (33, 44)  # cmudict_g2p source and target vocabulary sizes, specials included
MIN_FILL = 0.55  # shortest synthetic sequence, as a fraction of the bucket length


def base_parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: --quick, --repeats, --min_seconds, --results."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes")
    parser.add_argument("--repeats", type=int, default=0, help="least repetitions (0: default)")
    parser.add_argument(
        "--min_seconds",
        type=float,
        default=-1.0,
        help="repeat until each contender ran this long in total (-1: default)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="results JSON file")
    return parser


def int_list(text: str) -> list[int]:
    """``"128,512"`` -> ``[128, 512]`` (an argparse type)."""
    try:
        values = [int(part) for part in text.split(",") if part]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; got {text!r}"
        ) from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return values


def random_arrays(seed: int, shape: tuple[int, ...], count: int) -> list[jax.Array]:
    """``count`` float32 standard-normal arrays of ``shape``, from one numpy seed."""
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.standard_normal(shape, dtype=np.float32)) for _ in range(count)]


def fwd_bwd(attention: AttentionFn) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
    """Jitted ``(q, k, v, ct) -> d/d(q, k, v) sum(attention(q, k, v) * ct)``.

    ``ct`` is a random output cotangent passed as an argument, so XLA cannot simplify the
    backward pass the way it could for a constant one (``sum(out)`` makes ``dP`` a row sum).
    """

    def loss(query, key, value, cotangent):
        return jnp.sum(attention(query, key, value).astype(jnp.float32) * cotangent)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def forward(attention: AttentionFn) -> Callable[..., jax.Array]:
    """Jitted ``(q, k, v) -> attention(q, k, v)``."""
    return jax.jit(attention)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Median and quartiles of ``numerator[r] / denominator[r]`` over repetitions r."""
    ratios = np.asarray(numerator, float) / np.asarray(denominator, float)
    q25, median, q75 = np.percentile(ratios, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}


def compile_with_memory(jitted: Any, *args: Any) -> tuple[Any, dict[str, int]]:
    """``jitted`` compiled for ``args`` (arrays or ShapeDtypeStructs), and XLA's memory analysis.

    The compiled executable is callable on arrays of those shapes, so one compilation serves
    both the memory figure and the timing. In the analysis, ``temp_bytes`` is the scratch
    memory of the computation (for attention: scores, weights, their gradients and saved
    residuals); ``peak_bytes`` adds arguments and outputs.
    """
    compiled = jitted.lower(*args).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        raise RuntimeError("this backend gives no memory analysis for compiled executables")
    temp = int(analysis.temp_size_in_bytes)
    arguments = int(analysis.argument_size_in_bytes)
    outputs = int(analysis.output_size_in_bytes)
    alias = int(analysis.alias_size_in_bytes)
    return compiled, {
        "temp_bytes": temp,
        "argument_bytes": arguments,
        "output_bytes": outputs,
        "alias_bytes": alias,
        "peak_bytes": temp + arguments + outputs - alias,
    }


def available_memory_bytes() -> int:
    """``MemAvailable`` of /proc/meminfo (physical memory free for a new allocation)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def machine_info() -> dict[str, Any]:
    """Where and when the figures were measured."""
    return {
        "device": str(jax.devices()[0]),
        "platform": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "jax": jax.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that produced the figures: ``python <script relative to ROOT> <argv>``."""
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", str(Path(script).resolve().relative_to(ROOT)), *args])


def write_section(section: str, payload: dict[str, Any], path: Path = RESULTS_PATH) -> None:
    """Set ``results[section] = payload`` in the JSON file ``path``, keeping other sections.

    Read-modify-write under an exclusive ``flock`` on the file's directory, then an atomic
    rename, so benchmarks writing their own sections at the same time lose nothing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(results, dict):
            raise ValueError(f"{path} must hold a JSON object of sections; got {type(results)}")
        results[section] = payload
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        os.close(directory)  # also releases the lock


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A plain-text table: ``columns`` is ``[(key, header), ...]``; floats get 3 digits."""

    def cell(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return {True: "yes", False: "NO", None: "-"}[value]
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    table = [[header for _, header in columns]]
    table += [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.rjust(width) for text, width in zip(line, widths)) for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def mib(num_bytes: float) -> float:
    return num_bytes / 2**20


# --- g2p-shaped models and batches, without building the dataset -----------------------------
def g2p_config(variant: str, vocab: tuple[int, int] = G2P_VOCAB) -> ml_collections.ConfigDict:
    """``g2p.py:<variant>`` with every model key resolved, without building the dataset."""
    config = load_config_file(f"{G2P_CONFIG}:{variant}")
    sizes = {"vocab_size": vocab[0], "target_vocab_size": vocab[1], "max_len": 32}
    config.model = model_config(**{**config.model.to_dict(), **sizes})
    return config


def synthetic_batch(seed: int, batch: int, length: int, vocab: tuple[int, int]) -> dict:
    """A right-padded ``{"inputs", "targets", "valid"}`` batch of one bucket length."""
    rng = np.random.default_rng(seed)
    src_len = rng.integers(max(1, round(MIN_FILL * length)), length + 1, size=batch)
    tgt_len = np.clip(src_len + rng.integers(-1, 2, size=batch), 2, length)
    positions = np.arange(length)
    inputs = np.where(positions < src_len[:, None], rng.integers(5, vocab[0], (batch, length)), 0)
    targets = np.where(positions < tgt_len[:, None], rng.integers(5, vocab[1], (batch, length)), 0)
    targets[np.arange(batch), tgt_len - 1] = EOS
    return {
        "inputs": inputs.astype(np.int32),
        "targets": targets.astype(np.int32),
        "valid": np.ones(batch, bool),
    }


# --- matmul FLOPs of one training step ------------------------------------------------------
def analytic_flops(cfg: ml_collections.ConfigDict, batch: int, src_len: int, tgt_len: int):
    """(matmul FLOPs of one training step on the padded shapes, of which attention's)."""
    d, f, vocab = cfg.d_model, cfg.d_ff, cfg.target_vocab_size
    ns, nt = batch * src_len, batch * tgt_len  # positions
    enc = cfg.num_encoder_layers * (4 * d * d + 2 * d * f) * ns
    dec = cfg.num_decoder_layers * ((6 * d * d + 2 * d * f) * nt + 2 * d * d * ns)
    head = d * vocab * nt
    attention = (
        2
        * batch
        * d
        * (
            cfg.num_encoder_layers * src_len**2
            + cfg.num_decoder_layers * (tgt_len**2 + tgt_len * src_len)
        )
    )  # QK^T and AV: multiply-adds of the forward pass
    return 6 * (enc + dec + head + attention), 6 * attention


def nat_flops(cfg: ml_collections.ConfigDict, batch: int, src_len: int) -> float:
    """Matmul FLOPs of one CTC NAT training step on the padded shapes (6 x forward MACs).

    The encoder runs over S positions, the non-causal decoder over the canvas C = k S
    (self-attention, cross-attention to S, FFN) and the output layer over C with the blank.
    """
    d, f, vocab = cfg.d_model, cfg.d_ff, cfg.target_vocab_size + 1
    canvas = int(cfg.upsample) * src_len
    ns, nc = batch * src_len, batch * canvas
    enc = cfg.num_encoder_layers * ((4 * d * d + 2 * d * f) * ns + 2 * batch * d * src_len**2)
    dec = cfg.num_decoder_layers * (
        (6 * d * d + 2 * d * f) * nc
        + 2 * d * d * ns
        + 2 * batch * d * (canvas**2 + canvas * src_len)
    )
    return 6.0 * (enc + dec + d * vocab * nc)
