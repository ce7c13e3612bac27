"""The findings of a full AT-versus-NAT run, as report sections: the headline gaps, the quality
bar, the literature beside this run's measurements, the kinds of error, how certain a DAG's path
is, and the validation curves. ``report`` assembles them with the figures into ``report.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnlab.analysis import plots
from attnlab.analysis.dag_paths import dag_confidence
from attnlab.analysis.systems import SYSTEMS, one_pass
from attnlab.nat.dag import DAG
from attnlab.train.writers import read_metrics


def _cell(row: dict[str, Any], key: str, fmt: str | None) -> str:
    """One cell of a ``markdown_table``; ``fmt`` None: the figure with its 95% confidence
    interval (WER, BLEU)."""
    if fmt is None and key == "wer":
        lo, hi = row.get("wer_ci95", (row["wer"], row["wer"]))
        return f"{100 * row['wer']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    if fmt is None and key == "bleu":
        lo, hi = row.get("bleu_ci95", (row["bleu"], row["bleu"]))
        return f"{row['bleu']:.1f} [{lo:.1f}, {hi:.1f}]"
    return fmt.format(row[key]) if key in row else "-"


def markdown_table(rows: list[dict[str, Any]], columns) -> str:
    """Rows as a Markdown table; ``columns``: (header, row key, format or None for a CI)."""
    head = "| " + " | ".join(c[0] for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(r, k, f) for _, k, f in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


# Where the wrong outputs go wrong (analysis.scoring.error_kinds), % of all test examples
# unless the column says otherwise.
_ERROR_COLUMNS = (
    ("system", "system", "{}"),
    ("WER %", "wer", "{:.1%}"),
    ("wrong length %", "wrong_length", "{:.1%}"),
    ("right length, wrong tokens %", "wrong_same_length", "{:.1%}"),
    ("extra repeats %", "extra_repeats", "{:.1%}"),
    ("WER % (one reference)", "wer_one_ref", "{:.1%}"),
    ("WER % (several references)", "wer_several_refs", "{:.1%}"),
    ("same as at_beam4 %", "same_as_at_beam4", "{:.1%}"),
)


def errors_table(rows: list[dict[str, Any]]) -> str:
    return markdown_table(rows, _ERROR_COLUMNS)


def agreement(outputs: dict[str, list], rows: list[dict[str, Any]]) -> list[str]:
    """For each model decoded more than one way: how often all its decodings agree."""
    by_model: dict[str, list[str]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r["system"])
    lines = []
    for model, names in by_model.items():
        if len(names) < 2 or not all(n in outputs for n in names):
            continue
        same = [len({tuple(o) for o in outs}) == 1 for outs in zip(*(outputs[n] for n in names))]
        lines.append(
            f"- `{model}` ({', '.join(names)}): the same output for "
            f"{100 * sum(same) / len(same):.1f}% of the examples."
        )
    return lines


# Issue 17's five sources, each with its claim as the literature states it (translation,
# BLEU); ``literature`` puts this run's measurement of the same comparison beside it.
SOURCES = (
    (
        "Gu et al. 2018",
        "vanilla NAT: behind the AT; distillation and noisy parallel decoding "
        "(length candidates rescored by the AT) each close part of the gap",
    ),
    (
        "Gu & Kong 2021",
        "CTC with glancing and distillation: within about 0.3 BLEU of the AT, one pass",
    ),
    (
        "Huang et al. 2022",
        "DA-Transformer: within about 1.5 BLEU of the AT without distillation, one pass",
    ),
    (
        "Kasai et al. 2021",
        "a deep-encoder, shallow-decoder AT keeps the AT's quality and "
        "matches NAT's speed at large batch",
    ),
    (
        "Helcl et al. 2022",
        "NAT's speed-up depends on the conditions: measured against a "
        "strong AT, at batch 1 and at large batch, on CPU, it is smaller than reported",
    ),
)


def literature(rows: list[dict[str, Any]], reference: str = "at_beam4") -> list[str]:
    """A table: each source's claim, and this run's measurement of it (WER points against
    ``reference``, speeds as ratios measured side by side); sources with no system here are
    left out. Whether each agrees, and why, is the write-up's to say."""
    by = {r["system"]: r for r in rows}
    if reference not in by:
        return []

    def behind(*names: str) -> list[str]:
        present = [n for n in names if n in by]
        points = [f"{n} {100 * (by[n]['wer'] - by[reference]['wer']):+.1f}" for n in present]
        return [f"WER points behind {reference}: " + ", ".join(points)] if points else []

    def gains(what: str, *pairs: tuple[str, str]) -> list[str]:
        done = [
            f"{100 * (by[a]['wer'] - by[b]['wer']):+.1f} points ({a} -> {b})"
            for a, b in pairs
            if a in by and b in by
        ]
        return [f"{what} gains " + ", ".join(done)] if done else []

    dags = [n for n in ("nat_dag_greedy", "nat_dag_lookahead", "nat_dag_viterbi") if n in by]
    best_dag = [min(dags, key=lambda n: by[n]["wer"])] if dags else []
    measured = {
        "Gu et al. 2018": [
            *behind("nat_length_pred", "nat_length_beam5_at_rescore"),
            *gains("distillation", ("nat_length_pred", "nat_kd_length_pred")),
        ],
        "Gu & Kong 2021": [
            *behind("nat_ctc", "nat_ctc_glat", "nat_ctc_kd"),
            *gains("glancing", ("nat_ctc", "nat_ctc_glat"), ("nat_length_pred", "nat_glat")),
            *gains("distillation", ("nat_ctc", "nat_ctc_kd")),
        ],
        "Huang et al. 2022": [
            *behind(*best_dag, "nat_dag_lookahead_kd"),
            *gains("distillation", ("nat_dag_lookahead", "nat_dag_lookahead_kd")),
        ],
        "Kasai et al. 2021": [],
        "Helcl et al. 2022": [],
    }
    nats = [r for r in rows if r["system"] in SYSTEMS and one_pass(r["system"])]
    fastest = max(nats, key=lambda r: r["throughput_seq_s_b64"], default=None)
    if "at_deep_shallow_greedy" in by and "at_greedy" in by:
        ds, at = by["at_deep_shallow_greedy"], by["at_greedy"]
        diff = 100 * (ds["wer"] - at["wer"])
        text = f"at_deep_shallow_greedy {diff:+.1f} WER points against at_greedy"
        if fastest:
            text += (
                f"; throughput at batch 64 {ds['throughput_seq_s_b64']:.0f} against the "
                f"fastest one-pass NAT's {fastest['throughput_seq_s_b64']:.0f} sequences/s "
                f"({fastest['system']}), at batch 1 {ds['latency_ms_b1']:.2f} against "
                f"{fastest['latency_ms_b1']:.2f} ms"
            )
        measured["Kasai et al. 2021"].append(text)
    if nats:
        best = min(nats, key=lambda r: (r["wer"], r["latency_ms_b1"]))
        speeds = [
            f"{base}: {by[base]['latency_ms_b1'] / best['latency_ms_b1']:.1f}x at batch 1, "
            f"{best['throughput_seq_s_b64'] / by[base]['throughput_seq_s_b64']:.1f}x at batch 64"
            for base in ("at_greedy", reference)
            if base in by
        ]
        if speeds:
            measured["Helcl et al. 2022"].append(
                f"the best one-pass NAT ({best['system']}) against " + "; against ".join(speeds)
            )
    lines = ["| source | their claim (translation) | measured here |", "|---|---|---|"]
    for name, claim in SOURCES:
        if measured[name]:
            lines.append(f"| {name} | {claim} | {'; '.join(measured[name])} |")
    return lines if len(lines) > 2 else []


def headline(rows: list[dict[str, Any]]) -> list[str]:
    by = {r["system"]: r for r in rows}
    lines = []
    ats = [r for r in rows if r["model"].startswith("at")]
    best_at = min(ats, key=lambda r: r["wer"], default=None)
    nat_rows = [r for r in rows if not r["model"].startswith("at")]
    if best_at:
        lines.append(
            f"- Best AT system: {best_at['system']}, WER {100 * best_at['wer']:.1f}%, "
            f"PER {100 * best_at['per']:.2f}%."
        )
    for r in nat_rows:
        if not best_at:
            break
        gap = 100 * (r["wer"] - best_at["wer"])
        speed = r.get("speedup_vs_at_beam4")
        speed_text = f", {speed:.1f}x the speed of AT beam 4 at batch 1" if speed else ""
        lines.append(
            f"- {r['system']}: {gap:+.1f} WER points against {best_at['system']}{speed_text}."
        )
    if "nat_length_pred" in by and "nat_oracle_length" in by:
        gain = 100 * (by["nat_length_pred"]["wer"] - by["nat_oracle_length"]["wer"])
        lines.append(f"- Knowing the true length is worth {gain:.1f} WER points to the NAT.")
    return lines


# Issue 17's bar for the best one-pass NAT against AT beam 4: WER points behind at most,
# speed at batch 1 and throughput at batch 64 at least.
QUALITY_BAR = {"gap_points": 3.0, "speed_b1": 2.0, "speed_b64": 5.0}


def quality_bar(rows: list[dict[str, Any]], reference: str = "at_beam4") -> list[str]:
    """Every one-pass NAT against ``QUALITY_BAR``: a table, then the verdict on the best.

    The best is the one-pass NAT with the lowest WER (on a tie, the faster at batch 1); the
    verdict says which conditions it meets and by how much it misses the others. Empty without
    the reference or a one-pass NAT.
    """
    by = {r["system"]: r for r in rows}
    ref = by.get(reference)
    nats = [r for r in rows if r["system"] in SYSTEMS and one_pass(r["system"])]
    if ref is None or not nats:
        return []
    bar = QUALITY_BAR

    def measures(r):
        gap = 100 * (r["wer"] - ref["wer"])
        b1 = ref["latency_ms_b1"] / r["latency_ms_b1"]
        b64 = r["throughput_seq_s_b64"] / ref["throughput_seq_s_b64"]
        return gap, b1, b64

    mark = lambda ok: "yes" if ok else "no"  # noqa: E731
    lines = [
        f"One-pass NATs (no AT rescoring, no refinement, own length) against {reference}: "
        f"the bar is at most {bar['gap_points']:g} WER points behind, at least "
        f"{bar['speed_b1']:g}x its speed at batch 1 and {bar['speed_b64']:g}x its throughput "
        "at batch 64.",
        "",
        "| system | WER points behind | x speed b=1 | x throughput b=64 | meets the bar |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(nats, key=lambda r: r["wer"]):
        gap, b1, b64 = measures(r)
        ok = gap <= bar["gap_points"] and b1 >= bar["speed_b1"] and b64 >= bar["speed_b64"]
        lines.append(f"| {r['system']} | {gap:+.1f} | {b1:.1f} | {b64:.1f} | {mark(ok)} |")
    best = min(nats, key=lambda r: (r["wer"], r["latency_ms_b1"]))  # a tie: the faster
    gap, b1, b64 = measures(best)
    checks = [  # (met, measured, bar, shortfall)
        (
            gap <= bar["gap_points"],
            f"{gap:+.1f} WER points",
            f"{bar['gap_points']:g} points",
            f"{gap - bar['gap_points']:.1f} points",
        ),
        (
            b1 >= bar["speed_b1"],
            f"{b1:.1f}x at batch 1",
            f"{bar['speed_b1']:g}x",
            f"{bar['speed_b1'] - b1:.1f}x",
        ),
        (
            b64 >= bar["speed_b64"],
            f"{b64:.1f}x at batch 64",
            f"{bar['speed_b64']:g}x",
            f"{bar['speed_b64'] - b64:.1f}x",
        ),
    ]
    met = [f"{what} (bar {limit})" for ok, what, limit, _ in checks if ok]
    missed = [
        f"{what}, short of the bar of {limit} by {short}"
        for ok, what, limit, short in checks
        if not ok
    ]
    verdict = f"The best one-pass NAT is {best['system']}: "
    verdict += "it meets the bar." if not missed else "it misses the bar."
    if met:
        verdict += " Met: " + "; ".join(met) + "."
    if missed:
        verdict += " Missed: " + "; ".join(missed) + "."
    return [*lines, "", verdict]


def findings_sections(rows, outputs, *, metric: str = "wer", paths=()) -> list[str]:
    """A full run's findings: the headline gaps; with WER also the quality bar, the kinds of
    error and how often the decodings of one model agree (``paths``: lines on why, from
    ``dag_path_lines``)."""
    lines = ["## Findings", "", *headline(rows), ""]
    if metric != "wer":
        return lines
    bar = quality_bar(rows)
    if bar:
        lines += ["## The quality bar", "", *bar, ""]
    sources = literature(rows)
    if sources:
        lines += ["## Against the literature", "", *sources, ""]
    return lines + [
        "## Where the errors are",
        "",
        "Each wrong output counted once: with a length no reference has, or with the length "
        "of one and wrong tokens; extra repeats are outputs with more adjacent equal tokens "
        "than every reference; % of all test examples, except the two WER columns, which "
        "split the examples by how many references they have.",
        "",
        errors_table(rows),
        "",
        *agreement(outputs, rows),
        *paths,
        "",
    ]


def dag_path_lines(models, batches, rows, *, max_examples: int = 1024) -> list[str]:
    """For each DAG model of the table, how certain its greedy path is (``dag_paths``), over
    the first test batches up to ``max_examples`` examples."""
    kept, seen = [], 0
    for batch in batches:
        if seen >= max_examples:
            break
        kept.append(batch)
        seen += int(np.sum(np.asarray(batch["valid"], bool)))
    lines = []
    for key in dict.fromkeys(r["model"] for r in rows):
        model = models.get(key)
        if not isinstance(getattr(model, "recipe", None), DAG):
            continue
        c = dag_confidence(model, kept)
        lines.append(
            f"- `{key}` along its greedy path ({c['steps']} steps over {seen} test examples): the "
            f"transition taken has mean probability {c['transition_mean']:.3f} (at least 0.9 "
            f"at {100 * c['transition_at_least_0.9']:.1f}% of steps), the next token "
            f"{c['next_token_mean']:.3f} (at least 0.9 at "
            f"{100 * c['next_token_at_least_0.9']:.1f}%), the emitted token "
            f"{c['emission_mean']:.3f}: where the next token is near-certain, the decodings "
            "have little to disagree about."
        )
    return lines


def validation_curves(run_dir: Path, keys, metric: str = "eval_wer") -> dict[str, list]:
    """``{model: [[step, value], ...]}`` of each model's evaluations during training (its
    ``metrics.jsonl``); models never evaluated are left out."""
    curves = {}
    for key in keys:
        points = [[r["step"], r[metric]] for r in read_metrics(run_dir / key) if metric in r]
        if points:
            curves[key] = points
    return curves


def curves_table(curves: dict[str, list], metric: str = "eval_wer") -> str:
    """Models by evaluation step, the metric in percent where it is a rate; ``-`` where a
    model was not evaluated (it trained for fewer steps)."""
    steps = sorted({int(s) for points in curves.values() for s, _ in points})
    fmt = "{:.1%}" if plots.is_percent(metric) else "{:.3g}"
    head = "| model | " + " | ".join(str(s) for s in steps) + " |"
    lines = [head, "|" + "|".join("---" for _ in range(len(steps) + 1)) + "|"]
    for key, points in curves.items():
        at = {int(s): v for s, v in points}
        cells = [fmt.format(at[s]) if s in at else "-" for s in steps]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
