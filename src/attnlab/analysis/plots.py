"""PNG figures for the reports (matplotlib, Agg backend), drawn to read like the tables beside
them: rates drawn in percent, point labels that never overprint (``labels.place_labels``), log
axes ticked with plain numbers, a colorbar on every heat map, axes titled with their units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from attnlab.analysis.labels import place_labels  # noqa: E402

DPI = 120
_PERCENT = ("wer", "per", "accuracy", "exact_match", "length_accuracy")


def is_percent(metric: str) -> bool:
    """Whether ``metric`` is a rate in [0, 1] that the tables print in percent."""
    return metric.removeprefix("eval_") in _PERCENT


# Axis titles, with units, of the metrics and settings the reports plot.
_LABELS = {
    "steps_per_sec": "training speed (steps/s)",
    "tokens_per_sec": "training speed (tokens/s)",
    "eval_wer": "validation WER (%)",
    "eval_accuracy": "validation accuracy (%)",
    "eval_loss": "validation loss (nats per token)",
    "params": "parameters",
    "wall_seconds": "wall time (s)",
    "batch_size": "batch size (sequences)",
    "model.num_heads": "attention heads",
}


def axis_label(key: str) -> str:
    """The axis title of a metric or setting, with its unit: ``eval_wer`` -> ``validation WER
    (%)``; an unknown rate gets ``(%)``, any other key its name with spaces."""
    if key in _LABELS:
        return _LABELS[key]
    name = key.rsplit(".", 1)[-1].replace("_", " ")
    return f"{name} (%)" if is_percent(key) else name


def percent_axis(ax: Axes, axis: str = "y") -> None:
    """Tick labels of a fraction-valued axis in percent: 0.254 -> ``25.4%``."""
    percent = FuncFormatter(lambda v, _: f"{100 * v:.4g}%")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(percent)


def plain_log_axis(ax: Axes, axis: str = "x") -> None:
    """A log axis ticked with plain numbers (1, 2, 5 ms, never ``3x10^0``), three or more even
    over half a decade. Call it after the data are drawn: the ticks depend on the range."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    if decades <= 0.6:
        subs = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    elif decades <= 1.5:
        subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    elif decades <= 3:
        subs = (1.0, 2.0, 5.0)
    else:
        subs = (1.0,)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def length_error_figure(counts: Mapping[str, Mapping[int, int]], *, window: int = 5) -> Figure:
    """Heat map of the length-error distribution: one row per NAT system, one column per error.

    Errors beyond ``+-window`` are pooled into two tail columns (``<=-6``, ``>=+6``) so the
    columns stay wide enough for their labels; each cell prints its percentage.
    """
    names = list(counts)
    seen = [int(e) for c in counts.values() for e in c]
    lo = min(max(min(seen, default=0), -window), 0)
    hi = max(min(max(seen, default=0), window), 0)
    left_tail = any(e < lo for e in seen)
    right_tail = any(e > hi for e in seen)
    columns = [f"≤{_signed(lo - 1)}"] * left_tail + [_signed(e) for e in range(lo, hi + 1)]
    columns += [f"≥{_signed(hi + 1)}"] * right_tail
    table = np.zeros((len(names), len(columns)))
    for r, name in enumerate(names):
        total = sum(counts[name].values()) or 1
        for e, n in counts[name].items():
            c = min(max(int(e), lo - left_tail), hi + right_tail) - lo + left_tail
            table[r, c] += n / total
    fig, ax = plt.subplots(
        figsize=(1.6 + 0.55 * len(columns) + 1.5, 1.3 + 0.32 * len(names)),
        dpi=DPI,
        layout="constrained",
    )
    image = ax.imshow(table, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for (r, c), v in np.ndenumerate(table):
        if v > 0:
            text = f"{100 * v:.1f}" if v >= 0.001 else "<0.1"
            color = "white" if v > 0.6 else "black"
            ax.text(c, r, text, ha="center", va="center", fontsize=6.5, color=color)
    ax.set_xticks(range(len(columns)), columns, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted length - true length (closest reference)")
    ax.set_title("NAT length prediction errors (% of test examples per system)", fontsize=9)
    colorbar = fig.colorbar(image, ax=ax, pad=0.02)
    colorbar.set_label("% of test examples")
    percent_axis(colorbar.ax)
    return fig


def _signed(e: int) -> str:
    return f"+{e}" if e > 0 else str(e).replace("-", "−")


def quality_vs_latency_figure(rows: Sequence[Mapping], *, quality: str = "wer") -> Figure:
    """Quality (WER or BLEU, with its 95% CI where known) against batch-1 latency, log axis."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=DPI)
    points, bars = [], []
    for row in rows:
        color = "tab:blue" if row["system"].startswith("at_") else "tab:orange"
        x, y = float(row["latency_ms_b1"]), float(row[quality])
        lo, hi = row.get(f"{quality}_ci95", (y, y))
        ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt="o", color=color, capsize=2, lw=1)
        points.append((x, y))
        bars.append((x, float(lo), float(hi)))
    plain_log_axis(ax, "x")
    ys = [y for _, y in points]
    scale = 1.0 if is_percent(quality) else 100.0
    if ys and max(ys) - min(ys) < 0.02 * scale:  # all (nearly) equal: give the labels room
        top = min(max(ys) + 0.05, 1.005) if is_percent(quality) else max(ys) + 5
        bottom = min(ys) - 0.12 * scale
        ax.set_ylim(max(bottom, -0.005) if is_percent(quality) else bottom, top)  # no rate < 0
    else:
        ax.margins(x=0.08, y=0.1)
    name = quality.upper() if quality in ("wer", "per", "bleu") else quality
    if is_percent(quality):
        percent_axis(ax, "y")
    ax.set_xlabel("latency per sequence at batch 1 (ms, log scale)")
    unit = "%, " if is_percent(quality) else ""
    ax.set_ylabel(f"{name} ({unit}{'higher' if quality == 'bleu' else 'lower'} is better)")
    title = f"{name} versus latency: AT (blue) and NAT (orange); bars: 95% CI"
    if ys and len(set(ys)) == 1:
        value = f"{100 * ys[0]:.1f}%" if is_percent(quality) else f"{ys[0]:.1f}"
        title += f"\nevery system has {name} {value}: {name} does not separate them"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    place_labels(ax, points, [row["system"] for row in rows], bars=bars)
    return fig


def attention_maps_figure(maps: Sequence[tuple[str, np.ndarray, Sequence, Sequence]]) -> Figure:
    """Heat maps side by side, ``(title, weights [T, S], output tokens, source tokens)``, on
    one colour scale from 0 to 1 (weights are probabilities) with one shared colorbar."""
    fig, axes = plt.subplots(
        1, len(maps), figsize=(4.5 * len(maps) + 1.0, 4.2), squeeze=False, layout="constrained"
    )
    image = None
    for ax, (title, weights, out_tokens, src_tokens) in zip(axes[0], maps, strict=True):
        image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
        _token_ticks(ax.xaxis, src_tokens, rotation=90)
        _token_ticks(ax.yaxis, out_tokens, rotation=0)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title(title, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.9, label="attention weight")
    return fig


MAX_TOKEN_TICKS = 16  # more labels than this overprint in a 4.5-inch panel at 8 points


def _token_ticks(axis, tokens: Sequence[str], *, rotation: int) -> None:
    """Label every token of a short sequence; every k-th, as ``token (position)`` turned by
    ``rotation`` degrees, of a long one."""
    stride = -(-len(tokens) // MAX_TOKEN_TICKS)
    if stride == 1:
        axis.set_ticks(range(len(tokens)), list(tokens), fontsize=8)
        return
    where = range(0, len(tokens), stride)
    axis.set_ticks(where, [f"{tokens[i]} ({i})" for i in where], fontsize=7, rotation=rotation)


def latency_vs_length_figure(rows: Sequence[Mapping]) -> Figure:
    """Milliseconds per sequence against output length, one panel per batch size, log-log."""
    batches = sorted({int(r["batch"]) for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 4.2), squeeze=False)
    systems = list(dict.fromkeys(r["system"] for r in rows))
    for ax, batch in zip(axes[0], batches, strict=True):
        for i, name in enumerate(systems):
            pts = sorted(
                (r["output_length"], r["latency_ms"])
                for r in rows
                if r["system"] == name and r["batch"] == batch
            )
            style = "-o" if name.startswith("at") else "--s"
            ax.plot(*zip(*pts, strict=True), style, color=f"C{i}", label=name, markersize=4)
        lengths = sorted({int(r["output_length"]) for r in rows})
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        plain_log_axis(ax, "y")
        ax.set_xlabel("output length (tokens)")
        ax.set_ylabel("latency per sequence (ms)")
        ax.set_title(f"batch {batch}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def learning_curves_figure(curves: Mapping[str, Sequence], metric: str, labels: Mapping) -> Figure:
    """``metric`` on the validation split against the training step, one line per model
    (ATs solid with circles, NATs dashed with squares), named by ``labels[model]`` (the
    report's system names), legend outside the axes."""
    fig, ax = plt.subplots(figsize=(10.5, 4.6))
    for i, (name, points) in enumerate(curves.items()):
        steps, values = zip(*sorted(points), strict=True)
        style = "-o" if name.startswith("at") else "--s"
        label = labels.get(name, name)
        ax.plot(steps, values, style, color=f"C{i % 10}", label=label, markersize=4)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel(axis_label(metric))
    if is_percent(metric):
        percent_axis(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def learning_curves_time_figure(
    curves: Mapping[str, Sequence], times: Mapping[str, Sequence], labels: Mapping
) -> Figure:
    """Validation WER (``curves``: ``{model: [[step, wer], ...]}``) against the training step
    (left) and against the hours of training up to it (right; ``times``: ``{model: [[step,
    seconds], ...]}``, the points of the same steps), one line per model named by
    ``labels[model]`` (the report's system names): ATs solid with circles, NATs dashed with
    squares; one legend under both panels."""
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11.5, 4.8), sharey=True)
    for i, (name, points) in enumerate(curves.items()):
        wer = dict((int(s), v) for s, v in points)
        hours = {int(s): t / 3600 for s, t in times[name] if int(s) in wer}
        style = dict(color=f"C{i % 10}", markersize=4, label=labels.get(name, name))
        fmt = "-o" if name.startswith("at") else "--s"
        steps = sorted(wer)
        by_step.plot(steps, [wer[s] for s in steps], fmt, **style)
        timed = sorted(hours)
        by_time.plot([hours[s] for s in timed], [wer[s] for s in timed], fmt, **style)
    by_step.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    by_step.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    by_step.set_xlabel("training step (batches)")
    by_time.xaxis.set_major_locator(MaxNLocator(nbins=6))
    by_time.set_xlabel("training time (hours, evaluations excluded)")
    by_step.set_ylabel(axis_label("eval_wer"))
    for ax in (by_step, by_time):
        percent_axis(ax)
        ax.grid(True, alpha=0.3)
    handles, names = by_step.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 4), fontsize=8)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(names) - 1) // 4), 1, 1))
    return fig
