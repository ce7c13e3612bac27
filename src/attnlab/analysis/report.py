"""The AT-versus-NAT ``report.md``, rendered from the run's ``results.json`` alone (``render``).

It needs no model, so a committed results directory is re-rendered with one call. The tables
and figures show what was measured; whether that agrees with the literature is the run's
hand-written ``writeup.md`` (``config.writeup``), included verbatim. ``table`` and ``pct`` also
format the address and syllable reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attnlab.analysis import plots
from attnlab.analysis.latency import crossover
from attnlab.analysis.systems import SPEED_BASES

Row = Mapping[str, Any]


def table(head: Sequence[Any], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: ``head``, the rule, then one line per row of cells."""
    line = lambda cells: "| " + " | ".join(map(str, cells)) + " |"
    return [line(head), "|---" * len(head) + "|", *map(line, rows)]


def pct(value: float, ci: Sequence[float] | None = None, digits: int = 2) -> str:
    """A fraction in percent, with its interval where given: ``25.40 [24.10, 26.70]``."""
    text = f"{100 * value:.{digits}f}"
    return text + (f" [{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]" if ci else "")


_pct1 = lambda value: pct(value, digits=1)


def _with_ci(key: str, scale: float) -> Callable[[Row], str]:
    def cell(row: Row) -> str:
        lo, hi = row.get(f"{key}_ci95", (row[key], row[key]))
        return f"{scale * row[key]:.1f} [{scale * lo:.1f}, {scale * hi:.1f}]"

    return cell


def _latency(row: Row) -> str:
    """ms per sequence at batch 1, with the note of a system timed otherwise (not JAX)."""
    note = row.get("timing_note")
    return f"{row['latency_ms_b1']:.2f}" + (f" ({note})" if note else "")


# (header, row key, format of the value) or (header, None, format of the row).
_COLUMNS = (
    ("system", "system", str),
    ("step", "step", "{:,}".format),
    ("train h", "train_seconds", lambda s: f"{s / 3600:.2f}"),
    ("WER % [95% CI]", None, _with_ci("wer", 100.0)),
    ("PER %", "per", pct),
    ("BLEU [95% CI]", None, _with_ci("bleu", 1.0)),
    ("chrF", "chrf", "{:.1f}".format),
    ("exact %", "exact_match", _pct1),
    ("len acc %", "length_accuracy", _pct1),
    ("len MAE", "length_mae", "{:.2f}".format),
    ("ms/seq b=1", None, _latency),
    ("seq/s b=64", "throughput_seq_s_b64", "{:.0f}".format),
    ("x greedy", "speedup_vs_at_greedy", "{:.1f}".format),
    ("x beam4", "speedup_vs_at_beam4", "{:.1f}".format),
    (
        "params",
        None,
        lambda r: f"{r['params']:,}" + (f" {r['params_note']}" if "params_note" in r else ""),
    ),
)
LEGEND = (
    "Columns: `step`, the training step of the checkpoint decoded (the newest of those "
    "averaged); `train h`, the hours its training steps took (evaluations excluded); "
    "`len acc` and `len MAE`, how often a NAT's output length is a reference's and "
    "its mean absolute error in tokens; `ms/seq b=1`, the median time to decode one sequence "
    "alone; `seq/s b=64`, sequences decoded per second at the eval batch size; `x greedy` "
    "and `x beam4`, the batch-1 speed-up over `at_greedy` and `at_beam4` (their ms/seq over "
    "this system's); `params`, the parameters of the model(s) the system runs."
)
_ERROR_COLUMNS = (
    ("system", "system", str),
    ("WER %", "wer", _pct1),
    ("wrong length %", "wrong_length", _pct1),
    ("right length, wrong tokens %", "wrong_same_length", _pct1),
    ("extra repeats %", "extra_repeats", _pct1),
    ("WER % (one reference)", "wer_one_ref", _pct1),
    ("WER % (several references)", "wer_several_refs", _pct1),
    ("same as at_beam4 %", "same_as_at_beam4", _pct1),
)
# Runs too small for conclusions: their report says so at the top and draws no comparison.
QUICK_SCALES = ("quick", "demo")
FULL_REPORT = "experiments/results/g2p/second_edition/report.md"  # the newest committed full run
G2P_TASKS = ("g2p", "gpu")  # the at_vs_nat.py tasks that train on cmudict_g2p
# Issue 17's bar for a one-pass NAT against at_beam4: WER points behind at most, speed at
# batch 1 and throughput at batch 64 at least.
QUALITY_BAR = {"gap_points": 3.0, "speed_b1": 2.0, "speed_b64": 5.0}


def markdown_table(rows: Sequence[Row], columns) -> str:
    """Rows as a Markdown table; ``columns``: (header, key, format), ``-`` for a missing key."""
    cell = lambda row, key, fmt: fmt(row) if key is None else fmt(row[key]) if key in row else "-"
    cells = ([cell(row, key, fmt) for _, key, fmt in columns] for row in rows)
    return "\n".join(table([c[0] for c in columns], cells))


def results_table(rows: Sequence[Row], *, scale: str = "full") -> str:
    """The results table. A quick run's throughput, timed over a handful of batches, is not
    stable from run to run, so its column is left out (results.json still has it); so is the
    training time where no row has one (runs before it was recorded)."""
    quick, timed = scale in QUICK_SCALES, any("train_seconds" in r for r in rows)
    left_out = {"seq/s b=64"} if quick else set()
    left_out |= set() if timed else {"train h"}
    return markdown_table(rows, [c for c in _COLUMNS if c[0] not in left_out])


def main_rows(rows: Sequence[Row]) -> list[Row]:
    """The main table's rows: every model trained for the same budget (not the ablations)."""
    return [r for r in rows if not r.get("ablation")]


def ablation_lines(rows: Sequence[Row]) -> list[str]:
    """The ablations' table (issue 37: glancing schedule, graph size, canvas, the AT), each
    row with its step and training time, and WER points against the AT of the same budget."""
    ablations = [r for r in rows if r.get("ablation")]
    if not ablations:
        return []
    base = next((r for r in ablations if r["system"] == "at_8k_beam4"), None)
    if base is not None:
        ablations = [{**r, "vs_at": 100 * (r["wer"] - base["wer"])} for r in ablations]
    names = ("system", "step", "train h", "WER % [95% CI]", "PER %", "len acc %", "ms/seq b=1")
    columns = [c for c in _COLUMNS if c[0] in names + ("params",)]
    columns.insert(4, ("WER points vs at_8k_beam4", None, lambda r: _points_vs(r, "at_8k_beam4")))
    if not any("train_seconds" in r for r in ablations):
        columns = [c for c in columns if c[0] != "train h"]
    steps = sorted({int(r["step"]) for r in ablations})
    return [
        "## Ablations",
        "",
        f"Each model trained {' or '.join(f'{s:,}' for s in steps)} steps (`step`), the "
        "ablation budget: the AT's tuning grid, glancing schedules, the DAG's graph size and the "
        "CTC canvas, against the AT trained as long (`at_8k`). Columns as in the results "
        "table; WER points against `at_8k_beam4` carry, where measured, the 95% paired "
        "bootstrap interval of the difference (both systems' errors on the same resampled "
        "words).",
        "",
        markdown_table(ablations, columns),
        "",
    ]


def by_step_lines(rows: Sequence[Row]) -> list[str]:
    """Test WER of the systems decoded at several steps (``<system>@<step>`` rows beside the
    system's own), one column per step."""
    steps_of: dict[str, dict[int, Row]] = {}
    for r in rows:
        if "step" in r:  # a baseline that trains no steps (phonetisaurus) has none
            steps_of.setdefault(r["system"].partition("@")[0], {})[int(r["step"])] = r
    several = {name: at for name, at in steps_of.items() if len(at) > 1}
    if not several:
        return []
    steps = sorted({s for at in several.values() for s in at})
    wer = _with_ci("wer", 100.0)
    cells = [
        [name, *(wer(at[s]) if s in at else "-" for s in steps)] for name, at in several.items()
    ]
    return [
        "## Test WER against training steps",
        "",
        "The same models decoded from their checkpoints of each step (the checkpoint average "
        "ending there), WER % [95% CI] on the test split.",
        "",
        *table(["system", *(f"step {s:,}" for s in steps)], cells),
        "",
    ]


def quality_metric(task: str) -> str:
    """The headline metric of an AT-vs-NAT task: BLEU for translation, else sequence WER."""
    return "bleu" if task == "tfds" else "wer"


def reading(rows: Sequence[Row], *, scale: str, task: str = "g2p", split: str = "test") -> str:
    """What the table shows, and no more than its scale supports."""
    metric = quality_metric(task)
    show = lambda r: f"{100 * r[metric]:.1f}% WER" if metric == "wer" else f"{r[metric]:.1f} BLEU"
    best = (min if metric == "wer" else max)(rows, key=lambda r: r[metric])
    fastest = min(rows, key=lambda r: r["latency_ms_b1"])
    text = (
        f"On {rows[0]['examples']} {split} examples the best system is {best['system']} at "
        f"{show(best)}; the fastest at batch 1 is {fastest['system']} "
        f"({fastest['latency_ms_b1']:.2f} ms, {show(fastest)})."
    )
    if scale in QUICK_SCALES:
        text += (
            f" This is a {scale} run of small models trained for minutes: it shows that the "
            "pipeline works and that the models learn, but its differences between systems are "
            "not evidence about AT versus NAT (see the confidence intervals), and its timings "
            "come from a few dozen sequences."
        )
        text += f" The full run: {FULL_REPORT}." if task in G2P_TASKS else ""
    return text


def against(rows: Sequence[Row], reference: str = "at_beam4") -> list[str]:
    """Every other system against ``reference``: WER points behind it, speed at batch 1 and
    throughput at batch 64 as ratios, and whether the system is a one-pass NAT (``one_pass``
    in the row) that meets ``QUALITY_BAR``; [] without the reference."""
    ref, bar = next((r for r in rows if r["system"] == reference), None), QUALITY_BAR
    if ref is None:
        return []
    cells = []
    for r in sorted((r for r in rows if r is not ref), key=lambda r: r["wer"]):
        gap = 100 * (r["wer"] - ref["wer"])
        b1_key, b64_key = f"speedup_vs_{reference}", f"throughput_vs_{reference}"
        b1 = r.get(b1_key, ref["latency_ms_b1"] / r["latency_ms_b1"])
        b64 = r.get(b64_key, r["throughput_seq_s_b64"] / ref["throughput_seq_s_b64"])
        ok = gap <= bar["gap_points"] and b1 >= bar["speed_b1"] and b64 >= bar["speed_b64"]
        one, yes = bool(r.get("one_pass")), lambda b: "yes" if b else "no"
        pairs = ((b1_key, b1), (b64_key, b64))
        speeds = [_spread(r, k) if k in r else f"{v:.1f}" for k, v in pairs]
        cells.append([r["system"], f"{gap:+.1f}" + _paired(r, reference), *speeds, yes(one)])
        cells[-1].append(yes(ok) if one else "-")
    head = ["system", "WER points behind", "x speed b=1", "x throughput b=64", "one pass"]
    return [
        f"Against {reference}. Issue 17's bar for a one-pass NAT (one parallel decoder call, "
        f"its own length, no AT rescoring, no refinement): at most {bar['gap_points']:g} WER "
        f"points behind, at least {bar['speed_b1']:g}x the speed at batch 1 and "
        f"{bar['speed_b64']:g}x the throughput at batch 64."
        + (
            " Speeds: the median over the timing passes (their range in brackets); the bar is "
            "judged on the median."
            if ref.get("timing_passes")
            else ""
        )
        + (
            " WER points: in brackets the 95% paired bootstrap interval of the difference "
            "(both systems' errors on the same resampled words)."
            if any(f"wer_vs_{reference}_ci95" in r for r in rows)
            else ""
        ),
        "",
        *table([*head, "meets the bar"], cells),
    ]


def _paired(row: Row, base: str) -> str:
    """`` [low, high]``: the paired bootstrap interval of the row's WER points against ``base``
    (``wer_vs_<base>_ci95``), where the run measured it; else ``""``."""
    ci = row.get(f"wer_vs_{base}_ci95")
    return f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else ""


def _points_vs(row: Row, base: str) -> str:
    """WER points against ``base`` (``vs_at``) with their paired interval; ``-`` for the base."""
    if row["system"] == base or "vs_at" not in row:
        return "-"
    return f"{row['vs_at']:+.1f}" + _paired(row, base)


def _spread(row: Row, key: str, digits: int = 1) -> str:
    """``row[key]`` with its range over the timing passes where measured; ``-`` if absent."""
    if key not in row:
        return "-"
    lo_hi = row.get(f"{key}_range")
    text = f"{row[key]:.{digits}f}"
    return text + (f" ({lo_hi[0]:.{digits}f}-{lo_hi[1]:.{digits}f})" if lo_hi else "")


def speed_lines(rows: Sequence[Row]) -> list[str]:
    """Every system's timing with its spread, and its speed against each AT baseline."""
    timed = [r for r in rows if r.get("timing_passes")]
    if not timed:
        return []
    bases = [b for b in SPEED_BASES if any(f"speedup_vs_{b}" in r for r in timed)]
    head = ["system", "ms/seq b=1", "seq/s b=64"]
    head += [f"x {b} b=1" for b in bases] + [f"x {b} b=64" for b in bases] + ["timed on"]
    cells = [
        [r["system"], _spread(r, "latency_ms_b1", 2), _spread(r, "throughput_seq_s_b64", 0)]
        + [_spread(r, f"speedup_vs_{b}") for b in bases]
        + [_spread(r, f"throughput_vs_{b}") for b in bases]
        + [r.get("timed", "-")]
        for r in timed
    ]
    return [
        "## Speed, side by side",
        "",
        f"Every system below was timed in the same {timed[0]['timing_passes']} passes: in each, "
        "each system in turn (the order reversed every other pass) decodes the batch-1 "
        "examples one at a time, then the split at the eval batch size. Each figure is the "
        "median over the passes, with the smallest and largest in brackets; a speed ratio is "
        "taken pass by pass (the baseline's ms/seq over the system's at batch 1, the system's "
        "seq/s over the baseline's at batch 64). `timed on`: the trained model, or a fresh "
        "model of its config made to run the recorded decode.",
        "",
        *table(head, cells),
        "",
    ]


def yardstick_lines(rows: Sequence[Row], at: str = "at_beam4", wfst: str = "phonetisaurus"):
    """Issue 37's yardstick: ``at`` ahead of the classic baseline, with the two 95% intervals
    apart; [] without both rows."""
    by = {r["system"]: r for r in rows}
    if at not in by or wfst not in by:
        return []
    (a_lo, a_hi), (w_lo, w_hi) = by[at]["wer_ci95"], by[wfst]["wer_ci95"]
    gap = 100 * (by[wfst]["wer"] - by[at]["wer"])
    apart = a_hi < w_lo
    return [
        "## Yardstick",
        "",
        f"`{at}` against `{wfst}`: test WER {pct(by[at]['wer'], (a_lo, a_hi))} against "
        f"{pct(by[wfst]['wer'], (w_lo, w_hi))} (95% bootstrap intervals), {gap:+.2f} points in "
        f"`{at}`'s favour; the intervals {'do not overlap' if apart else 'overlap'}. Issue 37's "
        "bar: ahead with intervals apart; its goal: 3 points ahead.",
        "",
    ]


def error_lines(results: Mapping[str, Any]) -> list[str]:
    """The kinds of error, how often the decodings of one model agree, and how certain each
    DAG's greedy path is."""
    lines = [
        "## Where the errors are",
        "",
        "Each wrong output counted once: with a length no reference has, or with the length "
        "of one and wrong tokens; extra repeats are outputs with more adjacent equal tokens "
        "than every reference; % of all test examples, except the two WER columns, which "
        "split the examples by how many references they have.",
        "",
        markdown_table(results["systems"], _ERROR_COLUMNS),
        "",
    ]
    for a in results.get("agreement", []):
        lines.append(
            f"- `{a['model']}` ({', '.join(a['systems'])}): the same output for "
            f"{100 * a['same']:.1f}% of the examples."
        )
    for key, c in results.get("dag_paths", {}).items():
        lines.append(
            f"- `{key}` along its greedy path ({c['steps']} steps over {c['examples']} test "
            f"examples): the transition taken has mean probability {c['transition_mean']:.3f} "
            f"(at least 0.9 at {100 * c['transition_at_least_0.9']:.1f}% of steps), the next "
            f"token {c['next_token_mean']:.3f} (at least 0.9 at "
            f"{100 * c['next_token_at_least_0.9']:.1f}%), the emitted token "
            f"{c['emission_mean']:.3f}."
        )
    return [*lines, ""]


def writeup_section(path: str | Path) -> list[str]:
    """The hand-written Markdown file at ``path`` (``config.writeup``) under its heading: what
    a table cannot say, kept in its own file so that running the experiment again keeps it."""
    if not path:
        return []
    return [
        "## Against the literature: verdicts",
        "",
        f"_Written by hand, from the tables above and the training records (`{path}`)._",
        "",
        Path(path).read_text().strip(),
        "",
    ]


def model_labels(rows: Sequence[Row]) -> dict[str, str]:
    """Each model named by the systems of the table that decode it: ``at_greedy / at_beam4``,
    ``nat_length_pred & 5 more`` where there are more than two."""
    by_model: dict[str, list[str]] = {}
    for r in (r for r in rows if "@" not in r["system"]):  # a model's last checkpoint's rows
        for key in filter(None, (r["model"], r.get("rescored_by", ""))):
            by_model.setdefault(key, []).append(r["system"])
    return {
        key: " / ".join(names) if len(names) <= 2 else f"{names[0]} & {len(names) - 1} more"
        for key, names in by_model.items()
    }


def curves_table(curves: Mapping[str, Sequence], labels: Mapping[str, str]) -> str:
    """Models (by ``labels``) against evaluation steps, validation WER in percent; ``-`` where
    a model was not evaluated (it trained for fewer steps)."""
    steps = sorted({int(s) for points in curves.values() for s, _ in points})
    rows = []
    for key, points in curves.items():
        at = {int(s): v for s, v in points}
        cells = [f"{100 * at[s]:.1f}" if s in at else "-" for s in steps]
        rows.append([labels.get(key, key), *cells])
    return "\n".join(table(["systems", *steps], rows))


def curves_lines(results: Mapping[str, Any], run_dir: Path) -> list[str]:
    """The validation curves: the figure where a model has two or more evaluations, the
    table of every evaluation, and how the evaluations decode."""
    curves = results.get("validation_curves", {})
    if not curves:
        return []
    labels = model_labels(results["systems"])
    drawn = {k: v for k, v in curves.items() if len(v) >= 2}
    lines = ["## Validation WER against training steps", ""]
    if drawn:
        fig = plots.learning_curves_figure(drawn, "eval_wer", labels)
        plots.save(fig, run_dir / "validation_curves.png")
        lines += ["![Validation WER against training steps](validation_curves.png)", ""]
    else:
        lines += [
            "Each model was evaluated once: a curve needs two evaluations, so none is drawn.",
            "",
        ]
    lines += learning_curve_lines(results, labels, run_dir)
    return lines + [
        f"Each model's decoding during training ({results['eval_decoding']} for the ATs, the "
        "recipe's default for the NATs) of the first validation examples "
        f"(`eval_decode_examples`, {results['eval_decode_examples']} here) at each evaluation, "
        "WER in percent; the test table above decodes the whole test split with the averaged "
        "last checkpoints.",
        "",
        curves_table(curves, labels),
        "",
    ]


def learning_curve_lines(results: Mapping[str, Any], labels, run_dir: Path) -> list[str]:
    """Validation WER of ``curve_models`` against training steps and against training time
    (``learning_curves.png``), where ``results.json`` has their training times."""
    times, curves = results.get("training_time", {}), results.get("validation_curves", {})
    keys = [k for k in results.get("curve_models", []) if k in times and len(curves.get(k, [])) > 1]
    if not keys:
        return []
    fig = plots.learning_curves_time_figure(
        {k: curves[k] for k in keys}, {k: times[k] for k in keys}, labels
    )
    plots.save(fig, run_dir / "learning_curves.png")
    title = "Validation WER against training steps and training time"
    return [
        f"![{title}](learning_curves.png)",
        "",
        "Training time: the time of each model's training steps up to the evaluation, from "
        "its logged step rates (evaluations excluded, compiling included); the models trained "
        "on different machines and cores, so compare times loosely.",
        "",
    ]


def length_lines(by_length: Sequence[Row]) -> list[str]:
    """Tables (ms per sequence by output length, one per batch size) and the crossovers."""
    lengths = sorted({r["output_length"] for r in by_length})
    batches = sorted({r["batch"] for r in by_length})
    systems = list(dict.fromkeys(r["system"] for r in by_length))
    longest, has_exact = lengths[-1], "exact" in by_length[0]
    lines = [
        "Random sources of each length, decoded by every system side by side (interleaved "
        "repetitions, median per call divided by the batch size).",
        "",
    ]
    for batch in batches:
        cells = {(r["system"], r["output_length"]): r for r in by_length if r["batch"] == batch}
        head = ["system", *(f"{n} tokens" for n in lengths)]
        head += [f"exact % at {longest}"] if has_exact else []
        rows = []
        for name in systems:
            rows.append([name, *(f"{cells[(name, n)]['latency_ms']:.3g}" for n in lengths)])
            rows[-1] += [f"{100 * cells[(name, longest)]['exact']:.1f}"] if has_exact else []
        lines += [f"Batch {batch}, ms per sequence:", "", *table(head, rows), ""]
    ats = [s for s in systems if s.startswith("at")]
    pairs = [(at, batch) for at in ats for batch in batches]
    rows = [
        [nat, *(crossover(by_length, nat, at, batch) or "never" for at, batch in pairs)]
        for nat in systems
        if nat not in ats
    ]
    return lines + [
        "The output length from which each NAT is faster than each AT at every longer length "
        "measured (`analysis.latency.crossover`; `never`: at no length measured):",
        "",
        *table(["system", *(f"vs {at} b={batch}" for at, batch in pairs)], rows),
        "",
    ]


def samples_lines(samples: Sequence[Mapping[str, str]]) -> list[str]:
    if not samples:
        return []
    head = ["source", "references", "AT beam 4", "NAT length_pred"]
    rows = [[s["source"], s["references"], s["at_beam4"], s["nat"]] for s in samples]
    return ["## Where AT and NAT differ", "", *table(head, rows), ""]


def baseline_lines(rows: Sequence[Row]) -> list[str]:
    """How each system that is no model of ours (a row with ``timing_note``) was trained and
    timed, and whether its outputs (and so its timing) come from its record."""
    lines = []
    for r in (r for r in rows if r.get("timing_note")):
        q1, q3 = r["latency_ms_b1_quartiles"]
        lines += [
            f"`{r['system']}` ({r['timing_note']}): {r['budget']}, trained in "
            f"{r['train_s']:.0f} s. Batch 1: median {r['latency_ms_b1']:.2f} ms (quartiles "
            f"{q1:.2f}, {q3:.2f}), {r['timed']}; the whole split in one process: "
            f"{r['throughput_seq_s_b64']:.0f} words/s. Timed when it was decoded; its outputs "
            f"{'read from its record' if r['outputs'] == 'recorded' else 'decoded in this run'}.",
            "",
        ]
    return lines


def header_lines(results: Mapping[str, Any]) -> list[str]:
    scale, g2p = results["scale"], results["task"] in G2P_TASKS
    lines = [f"# AT versus NAT: {results['task']}", ""]
    if scale in QUICK_SCALES:
        lines += [
            f"> **A {scale} run.** Small models and few steps: this report checks the pipeline "
            "and shows that the models learn; it draws no comparison. "
            + (f"The full run is in `{FULL_REPORT}`." if g2p else ""),
            "",
        ]
    if results.get("command"):
        lines += [f"Command: `python experiments/{results['command']}`", ""]
    lines += [
        f"Machine: {results['machine']}. Test split `{results['split']}`, "
        f"{results['systems'][0]['examples']} examples. Latency is the median over single "
        "sequences at batch 1 after warm-up (compilation excluded); throughput is over the "
        "whole split at the eval batch size."
        + (
            ' Both are medians over passes that time every system side by side ("Speed, '
            'side by side").'
            if any(r.get("timing_passes") for r in results["systems"])
            else ""
        ),
        "",
    ]
    recorded = lambda r: r.get("outputs") == "recorded" and not r.get("timing_note")
    from_record = [r["system"] for r in results["systems"] if recorded(r)]
    if from_record:
        lines += [
            f"Recorded systems ({', '.join(from_record)}): their outputs come from "
            f"`{results['recorded']}`, written when their models were decoded (the step is in "
            "`results.json`); every figure of quality is computed from them here. Their "
            "models' checkpoints are not on this machine, so each is timed beside the others "
            "on a freshly initialized model of the same config, made to run the recorded decode: "
            "an AT search its recorded decoder steps, a NAT its recorded output lengths "
            "(`attnlab.analysis.recorded`).",
            "",
        ]
    lines += baseline_lines(results["systems"])
    if g2p:
        lines += [
            "Split note: our CMUdict split hashes each word into train/dev/test (90/2/8), so "
            "figures are not directly comparable with published CMUdict G2P results "
            "(about 20-23% WER for Transformers on other splits). WER counts a word wrong when "
            "its output matches none of its reference pronunciations.",
            "",
        ]
    return lines


def figure_lines(results: Mapping[str, Any], run_dir: Path) -> list[str]:
    """Draw the figures of ``results`` into ``run_dir``; their sections."""
    metric = quality_metric(results["task"])
    lines = []

    def figure(title: str, fig: Any, name: str) -> None:
        if fig is not None:  # else drawn by the run, from its models
            plots.save(fig, run_dir / name)
        lines.extend([f"## {title}", "", f"![{title}]({name})", ""])

    if results.get("length_errors"):
        counts = {s: {int(e): n for e, n in c.items()} for s, c in results["length_errors"].items()}
        fig = plots.length_error_figure(counts)
        figure("Length prediction: predicted minus true length", fig, "length_errors.png")
    fig = plots.quality_vs_latency_figure(main_rows(results["systems"]), quality=metric)
    figure("Quality versus latency", fig, "quality_vs_latency.png")
    lines += curves_lines(results, run_dir)
    if results.get("latency_vs_length"):
        fig = plots.latency_vs_length_figure(results["latency_vs_length"])
        figure("Latency against output length", fig, "latency_vs_length.png")
        lines += length_lines(results["latency_vs_length"])
    if results.get("attention_maps"):
        figure("Cross-attention maps of one test example", None, "attention_maps.png")
    return lines


def render(run_dir: str | Path) -> Path:
    """Write ``report.md`` and its PNGs into ``run_dir`` from its ``results.json``."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    rows, scale = results["systems"], results["scale"]
    lines = header_lines(results)
    main = main_rows(rows)  # none in a run of ablations only
    if main:
        lines += ["## Results", "", results_table(main, scale=scale), "", LEGEND, ""]
        lines += [
            "## Reading",
            "",
            reading(main, scale=scale, task=results["task"], split=results.get("split", "test")),
            "",
        ]
    lines += ablation_lines(rows)
    lines += by_step_lines(rows)
    lines += speed_lines(rows)
    if scale not in QUICK_SCALES and quality_metric(results["task"]) == "wer":
        comparison = against([r for r in main if "@" not in r["system"]])  # equal budgets
        lines += ["## Against at_beam4", "", *comparison, ""] if comparison else []
        lines += yardstick_lines([r for r in main if "@" not in r["system"]])
        lines += error_lines(results)
    if scale not in QUICK_SCALES:
        lines += writeup_section(results.get("writeup", ""))
    lines += figure_lines(results, run_dir)
    lines += samples_lines(results.get("samples", []))
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
