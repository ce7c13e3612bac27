"""``report.md`` and its plots for the AT-versus-NAT experiment: the results table, the reading,
the figures and the samples; the findings of a full run come from ``findings``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from attnlab.analysis import plots
from attnlab.analysis.findings import (
    curves_table,
    dag_path_lines,
    findings_sections,
    markdown_table,
    validation_curves,
)
from attnlab.analysis.latency import crossover
from attnlab.analysis.systems import valid_rows
from attnlab.decode.at import at_decode
from attnlab.nat.decoding import nat_decode
from attnlab.nn.attention import capture_cross_attention
from attnlab.specials import BOS, EOS, MASK, PAD

_COLUMNS = (
    ("system", "system", "{}"),
    ("WER % [95% CI]", "wer", None),
    ("PER %", "per", "{:.2%}"),
    ("BLEU [95% CI]", "bleu", None),
    ("chrF", "chrf", "{:.1f}"),
    ("exact %", "exact_match", "{:.1%}"),
    ("len acc %", "length_accuracy", "{:.1%}"),
    ("len MAE", "length_mae", "{:.2f}"),
    ("ms/seq b=1", "latency_ms_b1", "{:.2f}"),
    ("seq/s b=64", "throughput_seq_s_b64", "{:.0f}"),
    ("x greedy", "speedup_vs_at_greedy", "{:.1f}"),
    ("x beam4", "speedup_vs_at_beam4", "{:.1f}"),
    ("params", "params", "{:,}"),
)


# Runs too small for conclusions: their report says so at the top and draws no findings.
QUICK_SCALES = ("quick", "demo")
FULL_REPORT = "experiments/results/g2p/report.md"  # the committed full run (second edition)


def results_table(rows: list[dict[str, Any]], *, scale: str = "full") -> str:
    """The Markdown table. A quick run's throughput, timed over a handful of batches, is not
    stable from run to run, so its column is left out (results.json still has it)."""
    columns = [c for c in _COLUMNS if not (scale in QUICK_SCALES and c[1].startswith("through"))]
    return markdown_table(rows, columns)


G2P_TASKS = ("g2p", "gpu")  # the at_vs_nat.py tasks that train on cmudict_g2p


def quality_metric(task: str) -> str:
    """The headline metric of an AT-vs-NAT task: BLEU for translation, else sequence WER."""
    return "bleu" if task == "tfds" else "wer"


def reading(rows: list[dict[str, Any]], *, scale: str, task: str = "g2p") -> str:
    """One paragraph that says what the table shows, and no more than its scale supports."""
    by = {r["system"]: r for r in rows}
    metric = quality_metric(task)
    wer = metric == "wer"
    g2p = task in G2P_TASKS
    show = lambda r: f"{100 * r[metric]:.1f}% WER" if wer else f"{r[metric]:.1f} BLEU"  # noqa: E731
    parts = []
    at, nat = by.get("at_greedy"), by.get("nat_length_pred")
    if at and nat:
        parts.append(
            f"AT greedy reaches {show(at)} and NAT length_pred {show(nat)} on "
            f"{at['examples']} test {'words' if g2p else 'sequences'}"
            + (" (an untrained model scores 100% WER)" if wer else "")
            + "."
        )
    if scale in QUICK_SCALES:
        parts.append(
            f"This is a {scale} run of small models trained for minutes: it shows that the "
            "pipeline works and that both models learn, but its differences between systems are "
            "not evidence about AT versus NAT (see the confidence intervals), and its timings "
            "come from a few dozen sequences."
        )
        if g2p:
            parts.append(f"The full run and its findings: {FULL_REPORT}.")
        return " ".join(parts)
    best = min(rows, key=lambda r: r[metric]) if wer else max(rows, key=lambda r: r[metric])
    parts.append(f"The best system is {best['system']} at {show(best)}.")
    if nat and "speedup_vs_at_beam4" in nat:
        parts.append(
            f"NAT length_pred decodes {nat['speedup_vs_at_beam4']:.1f}x as fast as AT beam 4 "
            "at batch 1."
        )
    return " ".join(parts)


def attention_figure(models, batches, info, path: Path, max_len: int) -> Path | None:
    """Cross-attention (last decoder layer, mean over heads) of the first test example."""
    if "at" not in models or "nat" not in models:
        return None
    src = jnp.asarray(batches[0]["inputs"][:1])
    n_src = int(np.sum(np.asarray(src) != PAD))
    src_tokens = info.src_vocab.decode(np.asarray(src[0, :n_src]).tolist())
    at, nat = models["at"], models["nat"]
    hyp = np.asarray(at_decode(at, src, method="greedy", max_len=max_len))[0]
    n_out = int(np.argmax(hyp == EOS)) + 1 if (hyp == EOS).any() else len(hyp)
    tgt_in = jnp.asarray([[BOS, *hyp[: n_out - 1].tolist()]])
    _, at_maps = capture_cross_attention(at, at, src, tgt_in)
    out = nat_decode(nat, src, "length_pred", max_len=max_len)
    length = int(out.lengths[0])
    dec = jnp.where(jnp.arange(max_len)[None] < length, MASK, PAD).astype(jnp.int32)
    _, nat_maps = capture_cross_attention(nat, nat.decode, dec, nat.encode(src), src)
    if not at_maps or not nat_maps:
        return None
    label = lambda ids: info.tgt_vocab.decode([int(i) for i in ids]) + ["</s>"]
    at_w = np.asarray(at_maps[-1][0].mean(0))[:n_out, :n_src]
    nat_w = np.asarray(nat_maps[-1][0].mean(0))[:length, :n_src]
    return plots.attention_maps(
        [
            ("AT greedy: cross-attention, last layer", at_w, label(hyp[: n_out - 1]), src_tokens),
            (
                "NAT length_pred: cross-attention, last layer",
                nat_w,
                label(np.asarray(out.tokens[0, : length - 1])),
                src_tokens,
            ),
        ],
        path,
    )


def _samples(outputs, refs, batches, info, limit: int = 10) -> list[str]:
    if "at_beam4" not in outputs or "nat_length_pred" not in outputs:
        return []
    sources = [
        info.src_vocab.detokenize(info.src_vocab.decode(np.asarray(row).tolist()))
        for row in valid_rows(batches, "inputs")
    ]
    lines = ["| source | references | AT beam 4 | NAT length_pred |", "|---|---|---|---|"]
    detok = info.tgt_vocab.detokenize
    shown = 0
    for i, (a, n) in enumerate(zip(outputs["at_beam4"], outputs["nat_length_pred"], strict=True)):
        if a != n and shown < limit:
            ref_text = " / ".join(detok(r) for r in refs[i])
            lines.append(f"| {sources[i]} | {ref_text} | {detok(a)} | {detok(n)} |")
            shown += 1
    return lines if shown else []


def _by(by_length, batch: int, length: int) -> dict[str, dict[str, Any]]:
    return {
        r["system"]: r for r in by_length if r["batch"] == batch and r["output_length"] == length
    }


def _against_fastest_nat(by_length, batch: int, length: int, at: str, nats: list[str]):
    """(the fastest NAT, the AT system's latency over its latency) at one batch and length."""
    cells = _by(by_length, batch, length)
    if at not in cells or not nats:
        return None
    best = min(nats, key=lambda s: cells[s]["latency_ms"])
    return best, cells[at]["latency_ms"] / cells[best]["latency_ms"]


def length_section(by_length: list[dict[str, Any]]) -> list[str]:
    """Tables (ms per sequence by output length, one per batch size) and what they show."""
    lengths = sorted({r["output_length"] for r in by_length})
    batches = sorted({r["batch"] for r in by_length})
    systems = list(dict.fromkeys(r["system"] for r in by_length))
    longest = lengths[-1]
    lines = []
    for batch in batches:
        cells = {(r["system"], r["output_length"]): r for r in by_length if r["batch"] == batch}
        has_exact = "exact" in by_length[0]
        head = ["system", *(f"{n} tokens" for n in lengths)]
        head += [f"exact % at {longest}"] if has_exact else []
        lines += [f"Batch {batch}, ms per sequence:", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for name in systems:
            row = [name, *(f"{cells[(name, n)]['latency_ms']:.3g}" for n in lengths)]
            row += [f"{100 * cells[(name, longest)]['exact']:.1f}"] if has_exact else []
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    nats = [s for s in systems if not s.startswith("at")]
    for batch in batches:
        for nat in nats:
            if "at_greedy" in systems:
                n = crossover(by_length, nat, "at_greedy", batch)
                where = f"from {n} tokens on" if n else "at no length measured"
                lines.append(f"- Batch {batch}: {nat} is faster than at_greedy {where}.")
    beam = _against_fastest_nat(by_length, batches[0], longest, "at_beam4", nats)
    if beam:
        lines.append(
            f"- At {longest} tokens and batch {batches[0]}, the fastest one-pass NAT ({beam[0]}) "
            f"is {beam[1]:.1f}x as fast as at_beam4."
        )
    deep = _against_fastest_nat(by_length, batches[-1], longest, "at_deep_shallow_greedy", nats)
    if deep:
        lines.append(
            f"- At {longest} tokens and batch {batches[-1]}, at_deep_shallow_greedy takes "
            f"{deep[1]:.1f}x the time of the fastest NAT ({deep[0]}) per sequence."
        )
    return lines + [""]


def writeup_section(path: str | Path) -> list[str]:
    """The report's written part: the Markdown file at ``path`` (``config.writeup``), for
    what a table cannot say (whether each finding agrees with its source, and why, with the
    evidence), kept in its own file so that running the experiment again keeps it. None: []."""
    if not path:
        return []
    text = Path(path).read_text().strip()
    return [
        "## Against the literature: verdicts",
        "",
        f"_Written by hand, from the tables above and the training records (`{path}`)._",
        "",
        text,
        "",
    ]


def write_report(
    config,
    workdir: Path,
    rows,
    *,
    outputs,
    refs,
    length_errors,
    batches,
    models,
    info,
    by_length=(),
    curves=None,
) -> Path:
    """Write ``report.md`` and its PNGs into ``workdir``; ``curves`` (``{model: [[step, WER],
    ...]}``) default to the validation history of each model's workdir under ``workdir``."""
    max_len = int(batches[0]["targets"].shape[1])
    figures = []
    if length_errors:
        figures.append(
            (
                "Length prediction: predicted minus true length",
                plots.length_error_histogram(length_errors, workdir / "length_errors.png"),
            )
        )
    g2p = config.task in G2P_TASKS
    metric = quality_metric(config.task)
    figures.append(
        (
            "Quality versus latency",
            plots.quality_vs_latency(
                rows,
                workdir / "quality_vs_latency.png",
                quality=metric,
                lower_is_better=metric == "wer",
            ),
        )
    )
    if curves is None:
        keys = dict.fromkeys(k for r in rows for k in (r["model"], r.get("rescored_by", "")) if k)
        curves = validation_curves(workdir, keys)
    if curves:
        figures.append(
            (
                "Validation WER against training steps",
                plots.learning_curves(curves, workdir / "validation_curves.png"),
            )
        )
    if by_length:
        figures.append(
            (
                "Latency against output length",
                plots.latency_vs_length(by_length, workdir / "latency_vs_length.png"),
            )
        )
    attn = attention_figure(models, batches, info, workdir / "attention_maps.png", max_len)
    if attn:
        figures.append(("Cross-attention maps of one test example", attn))
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
    scale = config.get("scale", "full")
    lines = [f"# AT versus NAT: {config.task}", ""]
    if scale in QUICK_SCALES:
        lines += [
            f"> **A {scale} run.** Small models and few steps: this report checks the pipeline "
            "and shows that the models learn; it draws no findings. "
            + (f"The full run is in `{FULL_REPORT}`." if g2p else ""),
            "",
        ]
    lines += [
        f"Command: `python experiments/{command}`" if command else "",
        "",
        f"Machine: {os.cpu_count()} CPU cores, jax devices {jax.devices()}. "
        f"Test split `{config.test_split}`, {rows[0]['examples']} examples. "
        "Latency is the median over single sequences at batch 1 after warm-up (compilation "
        "excluded); throughput is over the whole split at the eval batch size.",
        "",
    ]
    from_record = [r["system"] for r in rows if r.get("outputs") == "recorded"]
    if from_record:
        lines += [
            f"Recorded systems ({', '.join(from_record)}): their outputs come from "
            f"`{config.recorded}`, written when their models were decoded (the step is in "
            "`results.json`); every figure of quality is computed from them here. Their "
            "models' checkpoints are not on this machine, so each is timed beside the others "
            "on a freshly initialized model of the same config, made to run the recorded decode: "
            "an AT search its recorded decoder steps, a NAT its recorded output lengths "
            "(`attnlab.analysis.recorded`).",
            "",
        ]
    if g2p:
        lines += [
            "Split note: our CMUdict split hashes each word into train/dev/test (90/2/8), so "
            "figures are not directly comparable with published CMUdict G2P results "
            "(about 20-23% WER for Transformers on other splits). WER counts a word wrong when "
            "its output matches none of its reference pronunciations.",
            "",
        ]
    lines += ["## Results", "", results_table(rows, scale=scale), ""]
    lines += ["## Reading", "", reading(rows, scale=scale, task=config.task), ""]
    if scale not in QUICK_SCALES:
        paths = dag_path_lines(models, batches, rows) if metric == "wer" else []
        lines += findings_sections(rows, outputs, metric=metric, paths=paths)
        lines += writeup_section(config.get("writeup", ""))
    for title, path in figures:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
        if path.name == "validation_curves.png":
            at_method = str(config.at.get("decode_method", "greedy"))
            if at_method == "beam":
                at_method = f"beam {config.at.get('beam_size', 4)}"
            lines += [
                f"Each model's decoding during training ({at_method} for the ATs, the "
                "recipe's default for the NATs) of the first validation examples "
                f"(`eval_decode_examples`, {config.at.get('eval_decode_examples', 0)} here) "
                "at each evaluation; the test table above decodes the whole test split with "
                "the averaged last checkpoints.",
                "",
                curves_table(curves),
                "",
            ]
        if path.name == "latency_vs_length.png":
            lines += [
                "Random sources of each length, decoded by every system side by side "
                "(interleaved repetitions, median per call divided by the batch size).",
                "",
                *length_section(list(by_length)),
            ]
    sample_lines = _samples(outputs, refs, batches, info)
    if sample_lines:
        lines += ["## Where AT and NAT differ", "", *sample_lines, ""]
    path = workdir / "report.md"
    path.write_text("\n".join(lines))
    return path
