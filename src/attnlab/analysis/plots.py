"""PNG figures for experiment reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def length_error_histogram(errors: Mapping[str, Sequence[int]], path: Path) -> Path:
    """Bars of predicted minus true length, one group per NAT system."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(errors)
    lo = min(min(v) for v in errors.values())
    hi = max(max(v) for v in errors.values())
    bins = np.arange(lo, hi + 1)
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        values = np.asarray(errors[name])
        counts = [(values == b).mean() for b in bins]
        ax.bar(bins + (k - (len(names) - 1) / 2) * width, counts, width=width, label=name)
    ax.set_xlabel("predicted length - true length")
    ax.set_ylabel("fraction of test examples")
    ax.set_xticks(bins)
    ax.legend(fontsize=8)
    ax.set_title("NAT length prediction errors")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def quality_vs_latency(
    rows: Sequence[Mapping], path: Path, *, quality: str = "wer", lower_is_better: bool = True
) -> Path:
    """Scatter of a quality metric against batch-1 latency (log scale), one point per system."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for row in rows:
        color = "tab:blue" if row["system"].startswith("at_") else "tab:orange"
        ax.scatter(row["latency_ms_b1"], row[quality], color=color)
        ax.annotate(
            row["system"],
            (row["latency_ms_b1"], row[quality]),
            fontsize=7,
            xytext=(4, 2),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency per sequence at batch 1 (ms, log scale)")
    direction = "lower is better" if lower_is_better else "higher is better"
    ax.set_ylabel(f"{quality} ({direction})")
    ax.set_title("Quality versus latency: AT (blue) and NAT (orange)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def attention_maps(
    maps: Sequence[tuple[str, np.ndarray, Sequence[str], Sequence[str]]], path: Path
) -> Path:
    """Heat maps side by side: ``(title, weights [T, S], output tokens, source tokens)``."""
    fig, axes = plt.subplots(1, len(maps), figsize=(4.5 * len(maps), 4.2), squeeze=False)
    for ax, (title, weights, out_tokens, src_tokens) in zip(axes[0], maps, strict=True):
        ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0)
        ax.set_xticks(range(len(src_tokens)), src_tokens, fontsize=8)
        ax.set_yticks(range(len(out_tokens)), out_tokens, fontsize=8)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
