"""The report figures read like the tables: percent axes, no overprinted labels or ticks,
a colorbar on every heat map. Overlap is measured on the drawn figure (Agg renderer)."""

import itertools
import json
import sys
import types
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from attnlab.analysis import plots  # noqa: E402
from attnlab.analysis.at_vs_nat import MAIN_MODELS  # noqa: E402
from attnlab.analysis.systems import SYSTEMS as ALL_SYSTEMS  # noqa: E402

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"
# The AT and NAT systems of the main table, which the quality-versus-latency figure draws (the
# ablations have a table of their own).
SYSTEMS = tuple(s for s, system in ALL_SYSTEMS.items() if system.model in MAIN_MODELS)
N = len(SYSTEMS)


def rows_with(wers, latencies):
    return [
        {"system": s, "wer": w, "wer_ci95": (w, w), "latency_ms_b1": t}
        for s, w, t in zip(SYSTEMS, wers, latencies, strict=False)
    ]


def overlapping_pairs(boxes):
    return [
        (i, j)
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
        if min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)
    ]


def label_boxes(fig):
    """Window extents of the point labels (the text only, not the leader lines)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_text() in SYSTEMS]
    return texts, [Text.get_window_extent(t, renderer) for t in texts]


def visible_tick_labels(axis):
    """(text, window extent) of the tick labels drawn inside the axis' view."""
    fig = axis.axes.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lo, hi = sorted(axis.get_view_interval())
    ticks = [t for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi]
    labels = [t.label1 for t in ticks if t.label1.get_visible() and t.label1.get_text()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in labels]


@pytest.mark.parametrize(
    "latencies",
    [
        [2.0 + 0.04 * k for k in range(N)],  # equal WER, close latencies (a quick run)
        [2.0] * N,  # equal WER and equal latency: every point on the same spot
    ],
)
def test_labels_of_systems_with_equal_wer_do_not_overlap(latencies):
    fig = plots.quality_vs_latency_figure(rows_with([1.0] * N, latencies))
    texts, boxes = label_boxes(fig)
    assert sorted(t.get_text() for t in texts) == sorted(SYSTEMS)
    assert overlapping_pairs(boxes) == []
    frame = fig.axes[0].get_window_extent()
    for box in boxes:  # every label stays readable inside the plot
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
        assert box.y1 <= frame.y1
    for text in texts:  # each label is attached to its own point
        assert text.xy == (latencies[SYSTEMS.index(text.get_text())], 1.0)
    plt.close(fig)


@pytest.mark.parametrize("edition", ["first_edition", "second_edition"])
def test_labels_of_the_committed_g2p_results_do_not_overlap(edition):
    rows = json.loads((RESULTS / "g2p" / edition / "results.json").read_text())
    rows = rows["systems"] if isinstance(rows, dict) else rows  # the first edition: a list
    fig = plots.quality_vs_latency_figure(rows)
    texts, boxes = label_boxes(fig)
    assert len(texts) == len(rows) and overlapping_pairs(boxes) == []
    plt.close(fig)


def test_labels_keep_clear_of_error_bars_and_of_points_they_do_not_name():
    """The committed long run: near-equal WERs with wide intervals, where a label once sat on
    an error bar, and another against a point it did not name."""
    rows = json.loads((RESULTS / "long" / "results.json").read_text())
    fig = plots.quality_vs_latency_figure(rows)
    texts, boxes = label_boxes(fig)
    ax = fig.axes[0]
    assert len(texts) == len(rows) and overlapping_pairs(boxes) == []
    for row in rows:
        lo, hi = row["wer_ci95"]
        (x, y0), (_, y1) = ax.transData.transform(
            [(row["latency_ms_b1"], lo), (row["latency_ms_b1"], hi)]
        )
        point = ax.transData.transform((row["latency_ms_b1"], row["wer"]))
        for text, box in zip(texts, boxes, strict=True):
            assert not (box.x0 < x < box.x1 and box.y0 < y1 and y0 < box.y1), (text, row)
            if text.get_text() != row["system"]:  # a word space from every other point
                assert (
                    box.x1 + 9 < point[0]
                    or point[0] < box.x0 - 9
                    or not (box.y0 < point[1] < box.y1)
                ), (text.get_text(), row["system"])
    plt.close(fig)


def test_wer_axis_is_in_percent_as_in_the_table():
    rows = rows_with([0.254, 0.26, 0.383, 0.64], [1.05, 2.33, 1.11, 1.13])
    fig = plots.quality_vs_latency_figure(rows)
    ax = fig.axes[0]
    assert ax.yaxis.get_major_formatter()(0.254, 0) == "25.4%"
    labels = visible_tick_labels(ax.yaxis)
    assert len(labels) >= 3
    formatter = ax.yaxis.get_major_formatter()
    for text, _ in labels:  # each tick prints its own position in percent
        assert text.endswith("%") and 0 <= float(text[:-1]) <= 100
    for loc in ax.get_yticks():
        assert formatter(loc, 0) == f"{100 * loc:.4g}%"
    plt.close(fig)


def test_a_rate_axis_of_nearly_perfect_systems_shows_no_negative_rate():
    """The long-output run: every WER is 0.0% or 0.1%; the axis must not run to -12%."""
    fig = plots.quality_vs_latency_figure(rows_with([0.001, 0.0, 0.001, 0.0], [2.1, 9.7, 1.4, 2.4]))
    ax = fig.axes[0]
    assert ax.get_ylim()[0] >= -0.005
    assert all(
        float(text.replace("\u2212", "-")[:-1]) >= 0 for text, _ in visible_tick_labels(ax.yaxis)
    )
    texts, boxes = label_boxes(fig)
    assert len(texts) == 4 and overlapping_pairs(boxes) == []
    plt.close(fig)


@pytest.mark.parametrize(
    "span", [(0.7, 6.0), (0.1, 100.0), (2.0, 2.4), (1.0, 3.3), (2.19, 5.49), (1.1, 9.0)]
)
def test_log_latency_ticks_are_plain_numbers_that_do_not_collide(span):
    latencies = np.geomspace(*span, num=4).tolist()
    fig = plots.quality_vs_latency_figure(rows_with([0.3, 0.4, 0.5, 0.6], latencies))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = visible_tick_labels(ax.xaxis)
    # two labels at least; three once the latencies span a factor of 1.5 or more
    assert len(labels) >= (3 if span[1] / span[0] >= 1.5 else 2), labels
    for text, _ in labels:
        float(text.replace("−", "-"))  # a plain number, not 3x10^0
    assert overlapping_pairs([box.padded(2) for _, box in labels]) == []
    plt.close(fig)


def length_errors():
    rng = np.random.default_rng(0)
    return {
        "nat_length_pred": [*rng.integers(-3, 4, size=200).tolist(), 29, -7, 12],
        "nat_oracle_length": [0] * 50,
        "nat_eos_cut": [*rng.integers(-1, 2, size=100).tolist(), 8, 8],
    }


def test_length_error_ticks_are_spaced_integers_with_pooled_tails():
    fig = plots.length_error_figure({k: Counter(v) for k, v in length_errors().items()})
    ax = fig.axes[0]
    labels = visible_tick_labels(ax.xaxis)
    texts = [t for t, _ in labels]
    assert texts[0] == "≤−6" and texts[-1] == "≥+6"
    values = [int(t.strip("≤≥").replace("−", "-")) for t in texts]
    assert values == list(range(-6, 7))  # consecutive integers, one per column
    assert overlapping_pairs([box.padded(3) for _, box in labels]) == []
    plt.close(fig)


def test_length_error_cells_are_the_percent_of_each_system():
    errors = length_errors()
    fig = plots.length_error_figure({k: Counter(v) for k, v in errors.items()})
    table = fig.axes[0].images[0].get_array()
    for row, values in zip(table, errors.values(), strict=True):
        values = np.clip(values, -6, 6)  # the two tail columns pool the rest
        expected = [np.mean(values == e) for e in range(-6, 7)]
        np.testing.assert_allclose(row, expected)
    assert fig.axes[0].images[0].colorbar is not None
    plt.close(fig)


def assert_one_shared_colorbar(fig):
    """Two heat maps on one 0..1 scale, and one colorbar (its own axes) that shows it."""
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 2 and all(im.get_clim() == (0.0, 1.0) for im in images)
    (colorbar,) = [im.colorbar for im in images if im.colorbar is not None]
    assert colorbar.ax in fig.axes and len(fig.axes) == 3  # two panels and the colorbar
    assert (colorbar.vmin, colorbar.vmax) == (0.0, 1.0)
    assert colorbar.ax.get_ylabel() == "attention weight"


def test_attention_heat_maps_share_one_colorbar_from_0_to_1():
    rng = np.random.default_rng(0)
    maps = [
        ("AT", rng.dirichlet(np.ones(5), size=4), list("ABCD"), list("abcde")),
        ("NAT", rng.dirichlet(np.ones(5), size=3), list("ABC"), list("abcde")),
    ]
    fig = plots.attention_maps_figure(maps)
    assert_one_shared_colorbar(fig)
    plt.close(fig)


@pytest.mark.parametrize("length", [7, 40, 64])
def test_attention_tick_labels_never_overprint_even_at_64_tokens(length):
    rng = np.random.default_rng(length)
    tokens = [chr(ord("a") + i % 26) for i in range(length)]
    maps = [
        ("AT", rng.dirichlet(np.ones(length), size=length), tokens, tokens),
        ("NAT", rng.dirichlet(np.ones(length), size=length), tokens, tokens),
    ]
    fig = plots.attention_maps_figure(maps)
    for ax in fig.axes[:2]:
        for axis in (ax.xaxis, ax.yaxis):
            labels = visible_tick_labels(axis)
            assert overlapping_pairs([box.padded(1) for _, box in labels]) == []
            assert len(labels) == length if length <= plots.MAX_TOKEN_TICKS else len(labels) >= 8
            if length > plots.MAX_TOKEN_TICKS:  # a thinned axis says which position it labels
                token, index = labels[1][0].split()
                assert tokens[int(index.strip("()"))] == token
    plt.close(fig)


def test_the_report_attention_figure_of_tiny_random_models_has_a_colorbar(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nn"))
    from flax import nnx
    from nn_testing import VOCAB, tiny_config, tokens

    from attnlab.analysis import at_vs_nat
    from attnlab.data.vocab import Vocab
    from attnlab.train.models import build_model

    figures = []
    draw = plots.attention_maps_figure
    monkeypatch.setattr(
        plots, "attention_maps_figure", lambda m: figures.append(draw(m)) or figures[-1]
    )
    letters = [chr(ord("a") + i) for i in range(VOCAB - 5)]
    info = types.SimpleNamespace(
        src_vocab=Vocab(letters), tgt_vocab=Vocab([c.upper() for c in letters], tokenizer="space")
    )
    models = {
        "at": build_model(tiny_config(name="seq2seq"), rngs=nnx.Rngs(0)),
        "nat": build_model(tiny_config(name="nat"), rngs=nnx.Rngs(1)),
    }
    batches = [{"inputs": tokens(0, [5, 3], 8), "targets": tokens(1, [4, 2], 8)}]
    path = at_vs_nat.attention_figure(models, batches, info, tmp_path / "attention_maps.png", 8)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    assert_one_shared_colorbar(fig)


def test_latency_vs_length_has_a_panel_per_batch_with_the_lengths_as_ticks():
    rows = [
        {"system": s, "output_length": n, "batch": b, "latency_ms": t * n**p / b}
        for s, t, p in (("at_greedy", 0.05, 1.0), ("nat_ctc", 0.3, 0.2))
        for n in (8, 16, 32, 64)
        for b in (1, 64)
    ]
    fig = plots.latency_vs_length_figure(rows)
    assert [ax.get_title() for ax in fig.axes] == ["batch 1", "batch 64"]
    for ax in fig.axes:
        assert [text for text, _ in visible_tick_labels(ax.xaxis)] == ["8", "16", "32", "64"]
        assert ax.get_yscale() == "log" and "ms" in ax.get_ylabel()
        for text, _ in visible_tick_labels(ax.yaxis):
            float(text)  # plain numbers
        assert overlapping_pairs([box.padded(2) for _, box in visible_tick_labels(ax.yaxis)]) == []
    legend = fig.axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["at_greedy", "nat_ctc"]
    plt.close(fig)


def test_validation_curves_are_read_tabled_and_drawn_in_percent_by_system_names(tmp_path):
    from attnlab.analysis.at_vs_nat import validation_curves
    from attnlab.analysis.report import curves_table, model_labels

    for key, records in {
        "at": [
            {"step": 100, "loss": 3.0},
            {"step": 200, "eval_wer": 0.5},
            {"step": 400, "eval_wer": 0.25},
        ],
        "nat_ctc": [{"step": 200, "eval_wer": 0.75}],
        "nat": [{"step": 100, "loss": 2.0}],  # never evaluated: left out
    }.items():
        (tmp_path / key).mkdir()
        lines = [json.dumps(r) for r in records] + ['{"step": 5']  # a cut last line is skipped
        (tmp_path / key / "metrics.jsonl").write_text("\n".join(lines))
    curves = validation_curves(tmp_path, ["at", "nat_ctc", "nat"])
    assert curves == {"at": [[200, 0.5], [400, 0.25]], "nat_ctc": [[200, 0.75]]}
    rows = [
        {"system": "at_greedy", "model": "at"},
        {"system": "at_beam4", "model": "at"},
        {"system": "nat_ctc", "model": "nat_ctc"},
        {"system": "nat_ctc_beam4", "model": "nat_ctc"},
        {"system": "nat_ctc_x", "model": "nat_ctc"},
    ]
    labels = model_labels(rows)
    assert labels == {"at": "at_greedy / at_beam4", "nat_ctc": "nat_ctc & 2 more"}
    assert curves_table(curves, labels).splitlines() == [
        "| systems | 200 | 400 |",
        "|---|---|---|",
        "| at_greedy / at_beam4 | 50.0 | 25.0 |",
        "| nat_ctc & 2 more | 75.0 | - |",
    ]
    fig = plots.learning_curves_figure(curves, "eval_wer", labels)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "validation WER (%)" and ax.get_xlabel() == "training step"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["at_greedy / at_beam4", "nat_ctc & 2 more"]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(label.endswith("%") for label in labels)
    assert overlapping_pairs([box.padded(2) for _, box in visible_tick_labels(ax.xaxis)]) == []
    plt.close(fig)


def test_axis_labels_carry_units():
    assert plots.axis_label("steps_per_sec") == "training speed (steps/s)"
    assert plots.axis_label("eval_wer") == "validation WER (%)"
    assert plots.axis_label("eval_per") == "eval per (%)"  # an unknown rate: its unit
    assert plots.axis_label("model.dropout") == "dropout"


def test_learning_curves_against_steps_and_time_name_their_axes_and_systems():
    """The committed second edition's curves, with training times: two panels, the same
    points in each, axes titled with units, a legend of system names, no overprinted ticks."""
    results = json.loads((RESULTS / "g2p" / "second_edition" / "results.json").read_text())
    curves = {k: results["validation_curves"][k] for k in ("at", "at_ds", "nat_ctc_kd")}
    times = {k: [[s, 0.4 * s] for s, _ in points] for k, points in curves.items()}
    labels = {"at": "at_greedy / at_beam4", "at_ds": "at_deep_shallow_beam4"}
    fig = plots.learning_curves_time_figure(curves, times, labels)
    by_step, by_time = fig.axes
    assert by_step.get_xlabel() == "training step (batches)"
    assert by_time.get_xlabel() == "training time (hours, evaluations excluded)"
    assert by_step.get_ylabel() == "validation WER (%)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["at_greedy / at_beam4", "at_deep_shallow_beam4", "nat_ctc_kd"]
    for line, points in zip(by_time.get_lines(), curves.values(), strict=True):
        hours = [0.4 * s / 3600 for s, _ in sorted(points)]
        np.testing.assert_allclose(line.get_xdata(), hours)
        np.testing.assert_allclose(line.get_ydata(), [v for _, v in sorted(points)])
    for axis in (by_step.xaxis, by_time.xaxis, by_step.yaxis):
        boxes = [box for _, box in visible_tick_labels(axis)]
        assert len(boxes) >= 3 and overlapping_pairs(boxes) == []
    plt.close(fig)
