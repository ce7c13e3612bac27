"""A sweep's results: ``results.csv`` (one row per run), ``report.md`` and ``<sweep>.png``.

The report groups runs by setting and gives the mean and the sample standard deviation
(ddof=1) over the seeds that finished. Settings are compared within one task config; the best
mean of the sweep's metric is marked among the settings where no seed diverged.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnlab.sweeps.runner import DONE, read_json
from attnlab.sweeps.spec import Run, Sweep, format_value

_RATES = ("steps_per_sec", "tokens_per_sec")
_TAIL = (*_RATES, "params", "wall_seconds")


def collect(runs: Sequence[Run], workdir: Path) -> list[dict[str, Any]]:
    """One row per run of the plan that is done (finished or diverged), in plan order."""
    rows = []
    for run in runs:
        done = read_json(Path(workdir) / run.relpath / DONE)
        if done is None:
            continue
        row: dict[str, Any] = {"run": run.name, "group": run.group, "task": run.task}
        row.update(seed=run.seed, status=done["status"])
        row.update(run.settings)
        metrics = done.get("metrics", {})
        row.update({k: v for k, v in metrics.items() if k not in _RATES})
        row.update({k: metrics.get(k) for k in _RATES})
        row.update(params=done.get("params"), wall_seconds=done.get("wall_seconds"))
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], sweep: Sweep, path: Path) -> Path:
    """``results.csv``: run, group, seed, status, the settings, the final metrics, then speed."""
    head = ["run", "group", "task", "seed", "status", *sweep.setting_keys()]
    metrics = sorted({k for r in rows for k in r} - set(head) - set(_TAIL) - {"step"})
    columns = [*head, "step", *metrics, *_TAIL]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), std


def summarize(rows: Sequence[dict[str, Any]], sweep: Sweep) -> list[dict[str, Any]]:
    """One entry per setting: its runs' settings, seed counts, and mean/std per metric."""
    by_setting: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_setting.setdefault((row["task"], row["run"]), []).append(row)
    columns = [
        *sweep.report_metrics,
        *[c for c in ("steps_per_sec", "params") if c not in sweep.report_metrics],
    ]
    out = []
    for (task, name), group in by_setting.items():
        finished = [r for r in group if r["status"] == "finished"]
        entry: dict[str, Any] = {"task": task, "run": name, "group": group[0]["group"]}
        entry["settings"] = {k: group[0][k] for k in sweep.setting_keys() if k in group[0]}
        entry["finished"], entry["diverged"] = len(finished), len(group) - len(finished)
        entry["stats"] = {
            c: _mean_std([float(r[c]) for r in finished if r.get(c) is not None]) for c in columns
        }
        out.append(entry)
    sign = 1 if sweep.lower_is_better else -1
    for task in dict.fromkeys(e["task"] for e in out):
        eligible = [
            e
            for e in out
            if e["task"] == task
            and not e["diverged"]
            and not math.isnan(e["stats"][sweep.metric][0])
        ]
        if eligible:
            best = min(sign * e["stats"][sweep.metric][0] for e in eligible)
            for e in eligible:
                e["best"] = sign * e["stats"][sweep.metric][0] == best  # ties: all marked
    return out


def _cell(mean: float, std: float, key: str) -> str:
    if math.isnan(mean):
        return "-"
    if key == "params":
        return f"{mean:,.0f}"
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def write_report(
    summaries: Sequence[dict[str, Any]],
    sweep: Sweep,
    path: Path,
    *,
    command: str,
    done: int,
    total: int,
) -> Path:
    """``report.md``: the question, the command, and a mean ± std table per task config."""
    direction = "lower" if sweep.lower_is_better else "higher"
    lines = [f"# Ablation: {sweep.name}", "", sweep.question, "", "Command:", "", "```"]
    lines += [command, "```", ""]
    lines.append(
        f"{done} of {total} runs done. Each cell is the mean ± sample std (ddof=1) over the "
        f"seeds that finished; **best** marks the {direction} mean {sweep.metric} among "
        "settings with no diverged seed. steps/s is the median over logging windows."
    )
    for task in dict.fromkeys(s["task"] for s in summaries):
        entries = [s for s in summaries if s["task"] == task]
        keys = list(dict.fromkeys(k for s in entries for k in s["settings"]))
        columns = list(entries[0]["stats"])
        lines += ["", f"## {task}", ""]
        lines.append("| " + " | ".join([*keys, "seeds", *columns]) + " |")
        lines.append("|" + "---|" * (len(keys) + 1 + len(columns)))
        for s in entries:
            cells = [format_value(s["settings"].get(k, "")) for k in keys]
            seeds = str(s["finished"]) + (f" ({s['diverged']} diverged)" if s["diverged"] else "")
            stats = [_cell(*s["stats"][c], c) for c in columns]
            if s.get("best"):
                i = columns.index(sweep.metric)
                stats[i] = f"**{stats[i]} best**"
            lines.append("| " + " | ".join([*cells, seeds, *stats]) + " |")
    path.write_text("\n".join(lines) + "\n")
    return path


def plot(summaries: Sequence[dict[str, Any]], sweep: Sweep, path: Path) -> Path:
    """One panel per (task, plot metric): lines over ``plot_x`` if set, else one bar per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(s["task"] for s in summaries))
    metrics = sweep.plot_metrics
    fig, axes = plt.subplots(
        len(tasks), len(metrics), figsize=(5.5 * len(metrics), 3.8 * len(tasks)), squeeze=False
    )
    for i, task in enumerate(tasks):
        entries = [s for s in summaries if s["task"] == task]
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            if sweep.plot_x and all(sweep.plot_x in s["settings"] for s in entries):
                _lines(ax, entries, sweep.plot_x, metric)
            else:
                _bars(ax, entries, metric)
            ax.set_ylabel(metric)
            ax.set_title(f"{sweep.name}: {task}", fontsize=9)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _lines(ax: Any, entries: Sequence[dict[str, Any]], x_key: str, metric: str) -> None:
    series: dict[str, list[tuple[float, float, float]]] = {}
    for s in entries:
        label = ",".join(
            f"{k.rsplit('.', 1)[-1]}={v}" for k, v in s["settings"].items() if k != x_key
        )
        mean, std = s["stats"][metric]
        series.setdefault(label or metric, []).append((s["settings"][x_key], mean, std))
    for label, points in series.items():
        points.sort()
        xs, means, stds = zip(*points, strict=True)
        ax.errorbar(
            xs,
            means,
            yerr=[0 if math.isnan(v) else v for v in stds],
            marker="o",
            capsize=3,
            label=label,
        )
    xs = sorted({s["settings"][x_key] for s in entries})
    if xs[0] > 0 and xs[-1] / xs[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(x_key)
    ax.legend(fontsize=7)


def _bars(ax: Any, entries: Sequence[dict[str, Any]], metric: str) -> None:
    labels = [s["run"].removeprefix(f"{s['group']},") for s in entries]
    means = [s["stats"][metric][0] for s in entries]
    stds = [0 if math.isnan(v) else v for v in (s["stats"][metric][1] for s in entries)]
    ax.bar(range(len(entries)), [0 if math.isnan(m) else m for m in means], yerr=stds, capsize=3)
    for k, s in enumerate(entries):
        if not s["finished"]:
            ax.annotate("diverged", (k, 0), ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(entries)), labels, rotation=30, ha="right", fontsize=7)


def write_results(
    sweep: Sweep, runs: Sequence[Run], workdir: Path, *, command: str
) -> tuple[Path, Path, Path | None]:
    """Write ``results.csv``, ``report.md`` and (once a run is done) ``<sweep>.png``."""
    workdir = Path(workdir)
    rows = collect(runs, workdir)
    csv_path = write_csv(rows, sweep, workdir / "results.csv")
    summaries = summarize(rows, sweep)
    report = write_report(
        summaries, sweep, workdir / "report.md", command=command, done=len(rows), total=len(runs)
    )
    png = plot(summaries, sweep, workdir / f"{sweep.name}.png") if summaries else None
    return csv_path, report, png
