"""A sweep's results: ``results.csv`` (one row per run), ``report.md`` and ``<sweep>.png``.

The report gives each setting's mean and sample std (ddof=1) over the seeds that finished, rates
in percent. **best** marks a setting only where its mean is strictly better as printed than every
other setting's of its task config with no diverged seed; never in a ``quick`` run (tiny models
show that the code runs, not which setting is better). ``render_from_csv`` redraws both from a
committed ``results.csv``.
"""

from __future__ import annotations

import csv
import math
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnlab.analysis.plots import axis_label, is_percent, percent_axis, save
from attnlab.analysis.report import pct, table
from attnlab.sweeps.jobs import DONE, read_json
from attnlab.sweeps.spec import Run, Sweep, format_value, parse_value

_TAIL = ("steps_per_sec", "tokens_per_sec", "params", "wall_seconds")


def collect(runs: Sequence[Run], workdir: Path) -> list[dict[str, Any]]:
    """One row per run of the plan that is done (finished or diverged), in plan order."""
    rows = []
    for run in runs:
        done = read_json(Path(workdir) / run.relpath / DONE)
        if done is not None:
            row = {"run": run.name, "group": run.group, "task": run.task, "seed": run.seed}
            row.update({"status": done["status"], **run.settings, **done.get("metrics", {})})
            rows.append(
                {**row, "params": done.get("params"), "wall_seconds": done.get("wall_seconds")}
            )
    return rows


def write_csv(rows: Sequence[dict[str, Any]], sweep: Sweep, path: Path) -> Path:
    """``results.csv``: run, group, seed, status, the settings, the final metrics, then speed."""
    head = ["run", "group", "task", "seed", "status", *sweep.setting_keys()]
    metrics = sorted({k for r in rows for k in r} - set(head) - set(_TAIL) - {"step"})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*head, "step", *metrics, *_TAIL], restval="")
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if v is not None} for row in rows)
    return path


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``results.csv`` as ``collect`` gives them, blanks left out."""
    with Path(path).open(newline="") as f:
        text = ("run", "group", "task", "status")
        return [
            {k: v if k in text else parse_value(v) for k, v in row.items() if v != ""}
            for row in csv.DictReader(f)
        ]


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
    columns = list(dict.fromkeys([*sweep.report_metrics, "steps_per_sec", "params"]))
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
    return out


def is_quick(task: str) -> bool:
    """Whether a task config argument names a ``quick`` variant (``g2p.py:at,quick``)."""
    return "quick" in task.partition(":")[2].split(",")


def _mark_best(entries: Sequence[dict[str, Any]], sweep: Sweep) -> str | None:
    """Set ``best`` on the one setting that is strictly best as printed; else say why not."""
    metric = sweep.metric
    eligible = [e for e in entries if not e["diverged"] and not math.isnan(e["stats"][metric][0])]
    note, top = "", None
    if len(eligible) > 1:
        shown = {id(e): _cell(e["stats"][metric][0], math.nan, metric) for e in eligible}
        sign = 1 if sweep.lower_is_better else -1
        top = min(eligible, key=lambda e: sign * e["stats"][metric][0])
        tied = [e for e in eligible if shown[id(e)] == shown[id(top)]]
        value = shown[id(top)] + ("%" if is_percent(metric) else "")
        if len(tied) == len(eligible):
            note = f"{metric} is {value} for every setting: it does not separate the runs."
        elif len(tied) > 1:
            note = f"No single best: {len(tied)} settings tie at {metric} {value}."
    if is_quick(entries[0]["task"]):
        quick = (
            "Quick run (each task's tiny `quick` variant): these numbers show that every run "
            "works, not which setting is better, so no setting is marked best."
        )
        return f"{quick} {note}".strip()
    if note:
        return f"{note} No setting is marked best."
    if top is not None:
        top["best"] = True
    return None


def _cell(mean: float, std: float, key: str) -> str:
    if math.isnan(mean):
        return "-"
    if key == "params":
        return f"{mean:,.0f}"
    text, spread = (pct(mean), 100 * std) if is_percent(key) else (f"{mean:.4g}", std)
    return text if math.isnan(std) else f"{text} ± {spread:.2g}"


def _constant(entries: Sequence[dict[str, Any]], metric: str) -> bool:
    """Whether every finished setting (two or more) prints the same mean of ``metric``."""
    shown = [
        _cell(e["stats"][metric][0], math.nan, metric)
        for e in entries
        if e["finished"] and metric in e["stats"] and not math.isnan(e["stats"][metric][0])
    ]
    return len(shown) > 1 and len(set(shown)) == 1


def panel_metrics(summaries: Sequence[dict[str, Any]], sweep: Sweep) -> list[str]:
    """``sweep.plot_metrics``, plus a metric that varies where one of them is constant."""
    metrics = list(sweep.plot_metrics)
    groups = [
        [s for s in summaries if s["task"] == t]
        for t in dict.fromkeys(s["task"] for s in summaries)
    ]
    if any(_constant(g, m) for g in groups for m in metrics):
        for extra in ("eval_loss", "eval_accuracy", *sweep.report_metrics):
            varies = all(extra in g[0]["stats"] and not _constant(g, extra) for g in groups)
            if extra not in metrics and varies:
                return [*metrics, extra]
    return metrics


def figure(summaries: Sequence[dict[str, Any]], sweep: Sweep) -> Any:
    """One panel per (task, plot metric): lines over ``plot_x`` if set, else one bar per setting;
    rates in percent; a metric flat over the settings says so (``panel_metrics`` adds another)."""
    import matplotlib.pyplot as plt  # the Agg backend: set by attnlab.analysis.plots

    tasks = list(dict.fromkeys(s["task"] for s in summaries))
    metrics = panel_metrics(summaries, sweep)
    fig, axes = plt.subplots(
        len(tasks), len(metrics), figsize=(5.5 * len(metrics), 3.8 * len(tasks)), squeeze=False
    )
    for i, task in enumerate(tasks):
        entries = [s for s in summaries if s["task"] == task]
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            lines = sweep.plot_x and all(sweep.plot_x in s["settings"] for s in entries)
            if lines:
                _lines(ax, entries, sweep.plot_x, metric)
            else:
                _bars(ax, entries, metric)
            direction = "lower" if sweep.lower_is_better else "higher"
            better = f" ({direction} is better)" if metric == sweep.metric else ""
            ax.set_ylabel(f"{axis_label(metric)}{better}")
            if is_percent(metric):
                percent_axis(ax)
            quick = "\nquick run: tiny models, not a comparison" if is_quick(task) else ""
            ax.set_title(f"{sweep.name}: {task}{quick}", fontsize=9)
            ax.grid(alpha=0.3)
            if _constant(entries, metric):
                _flat_note(ax, entries, metric, lines)
    width, height = fig.get_size_inches()
    caption = textwrap.wrap(
        "Bars and points: the mean over the seeds of each setting; error bars: one standard "
        "deviation over those seeds (none where a setting has one seed).",
        int(width * 14),
    )
    fig.text(0.5, 0.01, "\n".join(caption), ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, (0.05 + 0.15 * len(caption)) / height, 1, 1))
    return fig


def _flat_note(ax: Any, entries: Sequence[dict[str, Any]], metric: str, lines: bool) -> None:
    """Say on the panel that ``metric`` is the same in every setting."""
    mean = next(m for e in entries if e["finished"] and not math.isnan(m := e["stats"][metric][0]))
    if is_percent(metric) and lines:  # no empty band above 100%
        ax.set_ylim(mean - 0.06, min(mean + 0.06, 1.005))
    value = _cell(mean, math.nan, metric) + ("%" if is_percent(metric) else "")
    note = f"{metric} is {value} in every setting:\nit does not separate the runs"
    box = dict(facecolor="white", edgecolor="0.6", alpha=0.9)
    ax.text(0.5, 0.2, note, transform=ax.transAxes, ha="center", va="center", fontsize=8, bbox=box)


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
        yerr = [0 if math.isnan(v) else v for v in stds]
        ax.errorbar(xs, means, yerr=yerr, marker="o", capsize=3, label=label)
    xs = sorted({s["settings"][x_key] for s in entries})
    if xs[0] > 0 and xs[-1] / xs[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(axis_label(x_key))
    if len(series) > 1:
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
    ax.set_xlabel("setting")


def write_results(
    sweep: Sweep, runs: Sequence[Run], workdir: Path, *, command: str
) -> tuple[Path, Path, Path | None]:
    """Write ``results.csv``, ``report.md`` and (once a run is done) ``<sweep>.png``."""
    rows = collect(runs, workdir)
    csv_path = write_csv(rows, sweep, Path(workdir) / "results.csv")
    return (csv_path, *_render(rows, sweep, Path(workdir), command=command, total=len(runs)))


def render_from_csv(
    sweep: Sweep, workdir: Path, *, command: str, total: int | None = None
) -> tuple[Path, Path | None]:
    """Redraw ``report.md`` and ``<sweep>.png`` of ``workdir`` from its ``results.csv``: for a
    committed results directory, whose run directories are gone. ``command`` ran the sweep,
    ``total`` is its number of planned runs (default: the rows)."""
    rows = read_csv(Path(workdir) / "results.csv")
    return _render(rows, sweep, Path(workdir), command=command, total=total or len(rows))


def _render(rows, sweep: Sweep, workdir: Path, *, command: str, total: int):
    """``report.md`` (the question, the command, a mean ± std table per task config) and the
    plot."""
    summaries = summarize(rows, sweep)
    direction = "lower" if sweep.lower_is_better else "higher"
    lines = [f"# Ablation: {sweep.name}", "", sweep.question, "", "Command:", "", "```"]
    lines += [command, "```", ""]
    lines.append(
        f"{len(rows)} of {total} runs done. Each cell is the mean ± sample std (ddof=1) over the "
        "seeds that finished; columns marked % are rates in percent. **best** marks the "
        f"{direction} mean {sweep.metric} among settings with no diverged seed, only where it "
        "is strictly better as printed (ties mark nothing). steps/s is the median over "
        "logging windows."
    )
    for task in dict.fromkeys(s["task"] for s in summaries):
        entries = [s for s in summaries if s["task"] == task]
        keys = list(dict.fromkeys(k for s in entries for k in s["settings"]))
        columns = list(entries[0]["stats"])
        note, cells_of = _mark_best(entries, sweep), []  # sets each entry's "best"
        for s in entries:
            cells = [format_value(s["settings"].get(k, "")) for k in keys]
            cells.append(
                f"{s['finished']}" + (f" ({s['diverged']} diverged)" if s["diverged"] else "")
            )
            stats = [_cell(*s["stats"][c], c) for c in columns]
            if s.get("best"):
                i = columns.index(sweep.metric)
                stats[i] = f"**{stats[i]} best**"
            cells_of.append([*cells, *stats])
        heads = [f"{c} %" if is_percent(c) else c for c in columns]
        lines += ["", f"## {task}", "", *table([*keys, "seeds", *heads], cells_of)]
        lines += ["", note] if note else []
    (workdir / "report.md").write_text("\n".join(lines) + "\n")
    png = save(figure(summaries, sweep), workdir / f"{sweep.name}.png") if summaries else None
    return workdir / "report.md", png
