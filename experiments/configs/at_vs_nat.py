r"""AT versus NAT decoding: how much quality does parallel decoding give up, for how much speed?

    python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/at_vs_nat_g2p
    python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p,demo --workdir=runs/demo   # make demo

The first edition's full `g2p` run, as committed in experiments/results/g2p/first_edition/, trained four
models as separate processes (the last command resumes them all and decodes):

    C="python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/g2p"
    $C --config.train_only=at    # alone on both cores (wall times: experiments/results/g2p/first_edition)
    taskset -c 0 $C --config.train_only=nat & taskset -c 1 $C --config.train_only=nat_eos & wait
    $C --config.train_only=nat_kd    # needs the finished AT model (its teacher)
    $C --config.systems=at_greedy,at_beam4,nat_length_pred,...   # the first edition's 11

The second edition (issue 17), committed in experiments/results/g2p/second_edition/ (report.md,
results.json, plots; the README there says which edition is which), adds the deep-shallow AT (`at_ds`) and
the frontier NATs (`nat_glat`, `nat_ctc`, `nat_ctc_glat`, `nat_dag`, `nat_ctc_kd`); `nat_dag_kd`
and NPD are models and systems too, but not in its committed table. The models take more
machine time than one session has, and a session's machine may not keep the last one's
checkpoints, so each finished model records what it produced in
experiments/results/g2p/second_edition/recorded (`config.recorded`, analysis.recorded): the test outputs of
each of its systems, and the AT teacher's outputs on the training split. A student trains on
the recorded teacher outputs without the teacher; the last run reads every system from the
record and times them all side by side (the commands of that edition's code; its NATs trained
8000 steps, so this file's configs no longer match its records):

    C="python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/g2p2 --config.recorded=experiments/results/g2p/second_edition/recorded"
    $C --config.systems=at_greedy,at_beam4       # trains (or resumes) the AT, records it
    $C --config.systems=nat_ctc_kd               # records the AT's training-split outputs, trains the student
    $C --config.systems=<a model's systems>      # trains (or resumes) that model, records it
    $C --config.systems=<every recorded system> --config.writeup=experiments/results/g2p/second_edition/writeup.md

The second edition's measured training wall times (8000 steps for a NAT, 20000 for an AT;
machines differ by up to 2x; experiments/results/g2p/second_edition/README.md, "How each model was trained", has the logs' figures):

| model | wall time | where |
|---|---|---|
| `at` | 58.7 min (first edition), 110 min (2026-11-28) | alone on both cores |
| `at_ds` | 99 min | alone on both cores (2026-12-05) |
| `nat` | 79 min | one core, the other training `nat_kd` (2026-12-05) |
| `nat_kd` | 66 min | one core (2026-12-05) |
| `nat_eos` | about 155 min | one core, the other training (2026-12-05) |
| `nat_glat` | 90 min | one core, the other training `nat_dag` (2026-11-28) |
| `nat_ctc` | 134 min | one core, the other training (2026-12-05) |
| `nat_ctc_glat` | 92 min | alone on both cores (2026-12-06) |
| `nat_dag` | 123 min | 91 min on one core, 32 on both (2026-11-28) |
| `nat_ctc_kd` | about 100 min | alone on both cores (2026-11-28) |
| the distillation data | 21 min | alone on both cores (2026-11-28) |

Alone on both cores, from the measured step times (docs/training_profile.md): `nat_ctc` about 85 min, `nat_eos` about 80. So on this round's machines the AT (110
min), the deep-shallow AT (99), the distilled CTC NAT (about 100) and CTC+GLAT (92) exceed the
issue's 90 minutes by 2-22% even alone on both cores (the AT took 58.7 min on the first
edition's machine, about twice as fast); the NATs whose canvases are wider than the target
(CTC, eos_canvas) fit only alone on both cores.

The third edition (issue 37) lands in experiments/results/g2p/ (its README will give each
model's command, step count and wall time). Every model of the main table
(analysis.at_vs_nat.MAIN_MODELS) trains the AT's budget, 20000 steps of 128 words, and keeps
its checkpoints of steps 6000-8000 (`keep_checkpoint_steps`), so that its test split can also
be decoded at step 8000 (system `<name>@8000`). The ablations (ABLATION_MODELS) train
ABLATION_STEPS = 8000 steps each at the base AT's size, whichever AT the main table takes. Each
model records its outputs when it finishes (`config.recorded`), as in the second edition, so no
finished training is lost when a machine is replaced. Two models train side by side, one per
core, while other work goes on. Training times, planned from the step times that
`benchmarks/time_to_quality.py` measured on one core (issue 36; 0.406 s for the AT, 0.657 s
for the CTC NAT on its 2x canvas; docs/training_profile.md, "Time to quality"): 8000 AT steps
about 54 min, 20000 about 2.3 h; 8000 CTC steps about 88 min, 20000 about 3.7 h; evaluation
and the other recipes' step costs come on top and are to be measured.

    R=experiments/results/g2p/recorded
    C="python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/g2p3 --config.recorded=$R"
    pair() { taskset -c 0 $C $1 & taskset -c 1 $C $2 & wait; }

1. The AT tuning grid (AT_TUNING: wide, deep, dropout, smoothing, lr, warmup) beside the base
   AT at 8000 steps. Compared on validation only: `train_only` trains one model and prints its
   last validation WER (beam 4, the first 1024 validation words) and the time of its training
   steps; nothing is decoded on the test split.

    pair --config.train_only=at_8k --config.train_only=at_tune_wide
    pair --config.train_only=at_tune_deep --config.train_only=at_tune_dropout
    pair --config.train_only=at_tune_smoothing --config.train_only=at_tune_lr
    $C --config.train_only=at_tune_warmup

   Then every one of them decodes the whole validation split (2,462 words; 1,024 give a 95%
   interval of about +-2.8 points at 30% WER, wider than the differences looked for), each
   row with its WER points against `at_8k_beam4` and their paired bootstrap interval (the
   report's ablation table), recorded apart from the test outputs:

    T=at_8k_beam4,at_tune_wide_beam4,at_tune_deep_beam4,at_tune_dropout_beam4,at_tune_smoothing_beam4,at_tune_lr_beam4,at_tune_warmup_beam4
    python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/g2p3 \
        --config.recorded=${R}_validation --config.test_split=validation --config.systems=$T --config.timing_passes=1

   The best names the main table's AT in every later command, as the variant `at=<name>`
   (`--config=experiments/configs/at_vs_nat.py:g2p,at=<name>`; `at=base` changes nothing): the
   AT, the deep-shallow AT and every main-table NAT take its size. The ablations keep the base.
2. The ablations, each decoded on the test split and recorded (the report's ablation table,
   against `at_8k` at the same budget):

    pair --config.systems=at_8k_greedy,at_8k_beam4 --config.systems=nat_ctc_8k
    pair --config.systems=nat_ctc_glat_linear --config.systems=nat_ctc_glat_anneal
    pair --config.systems=nat_dag_x2 --config.systems=nat_dag_x4
    pair --config.systems=nat_dag_x8 --config.systems=nat_ctc_x3
    pair --config.systems=nat_glat_linear --config.systems=nat_glat_anneal  # if time allows,
    $C --config.systems=nat_vanilla_8k                                     # with these two

   `nat_ctc_x2` has `nat_ctc_8k`'s config (CTC_UPSAMPLE is 2): one training, which
   `runs/g2p3/nat_ctc_x2` links to (analysis.at_vs_nat.aliases), so the canvas ablation trains
   only `nat_ctc_x3` and decodes `--config.systems=nat_ctc_x2` once `nat_ctc_8k` is done. Then set MAIN_GLANCING (the schedule of nat_glat, nat_ctc_glat and
   nat_dag) and MAIN_DAG_UPSAMPLE (the DAG's graph size) above from the ablation table, and
   commit them before the main table trains.
3. The main table, with `C` given the variant `at=<name>` of step 1
   (`C="${C/:g2p /:g2p,at=<name> }"`). The AT first, alone on both cores: it is the teacher.
   The first distilled student records the teacher's outputs on the training split (the
   others wait for it and train on them); `nat_dag_8k_kd`, the ablation DAG distilled, says
   whether the main table's DAG is distilled (issue 37: "distilled if that helps at 8,000
   steps"). NPD (`nat_length_beam5_at_rescore`) needs the AT's and the NAT's checkpoints in
   one workdir, so it is decoded where both trained.

    $C --config.systems=at_greedy,at_beam4,at_beam4@8000
    pair "--config.systems=nat_ctc_kd,nat_ctc_kd@8000" --config.systems=nat_dag_8k_kd
    pair "--config.systems=at_deep_shallow_greedy,at_deep_shallow_beam4" "--config.systems=nat_ctc,nat_ctc_beam4,nat_ctc@8000"
    pair "--config.systems=nat_length_pred,nat_length_beam3,nat_length_beam5,nat_length_beam5_at_rescore,nat_oracle_length" --config.systems=nat_kd_length_pred
    pair --config.systems=<nat_glat or nat_ctc_glat: the ablations' best> "--config.systems=nat_dag_greedy,nat_dag_lookahead,nat_dag_viterbi"
    $C --config.systems=nat_dag_lookahead_kd   # if nat_dag_8k_kd beat its undistilled twin

   `nat` is the vanilla NAT. The second edition's `nat_eos` (eos_canvas) and the mask-predict
   model `nat_cmlm` are left out of the third edition's main table: the issue does not ask
   for them, and eos_canvas took about 155 min for 8000 steps on one core in the second
   edition, so about 6.5 h at this budget.
   (`@8000`: the checkpoints of steps 6000-8000 averaged, decoded for the AT and the NATs
   that may turn out best; the report shows test WER at both steps for each.)
4. Every recorded system timed side by side (`timing_passes` passes, each system in turn in
   each), on a machine with nothing else running, then the
   hand-written verdicts (`writeup.md`, issue 37 item 5) and a re-run to include them:

    $C --config.systems=<the main table's systems>,<the ablations'>,at_beam4@8000,<best NAT>@8000 \
        --config.curve_models=at,at_ds,<the best two NATs> --config.writeup=experiments/results/g2p/writeup.md

   Copy `runs/g2p3/{report.md,results.json,*.png,config.json}` to experiments/results/g2p/, and
   point analysis.report.FULL_REPORT (`make demo`'s closing pointer) at its report.md.

Parameter counts (issue 37: the main table within 5% of the AT), on shapes alone:

    python -c "from attnlab.analysis.at_vs_nat import size_table as t; from attnlab.train.config import load_config_file as f; print(t(f('experiments/configs/at_vs_nat.py:g2p')))"

With this revision's g2p configs (at=base): the AT 3,128,832; the deep-shallow AT +4.7%, the
DAGs +2.4%, the vanilla and cmlm NATs +0.4%, the CTC NATs +0.1%, eos_canvas +0.0%.

Expected result (full `g2p`, 2 CPU cores): the third edition's experiments/results/g2p/report.md
when it lands (until then the second edition's, experiments/results/g2p/second_edition/report.md;
the first edition's: experiments/results/g2p/first_edition/report.md). The target is AT at WER <= 27%
and PER <= 7% on the cmudict_g2p test split. The `demo` form (`make demo`) trains the AT and
the vanilla NAT at a small scale; measured on 2 cores (BUILD_NOTES.md, "make demo"): test WER
61.9% (AT greedy) and 77.0% (NAT length_pred) on 512 test words of a 10000-word build, in
6 min 45 s from a fresh clone on a machine running at about half its usual speed. The `quick` form checks the plumbing (tests), not the quality.

Variants (comma-separated after the colon):
- `at=<name>`: the main table's AT, `base` (default) or one of AT_TUNING's (g2p).
- `g2p` (default) | `synthetic` (reverse; copy with `long`) | `tfds` (a translation dataset from the TFDS
  catalog, `--config.data_name=tfds:ted_hrlr_translate/pt_to_en` by default) | `gpu` (g2p
  sized for one GPU: d_model 512, d_ff 2048, batch 512, 30000 steps, bfloat16 matmuls;
  install a CUDA jax first, `make setup ACCEL=cuda`).
- `small`: a 2+2-layer, d_model 128 model with length buckets, a few minutes of training per
  model on 2 CPU cores: outputs are real, quality is far from the full config's.
- `demo`: 2+2 layers, d_model 64, 1200 steps on a 10000-word build, AT and NAT only, five
  systems (`make demo`).
- `long` (with `synthetic`): copy at lengths 1-64 (reverse was far from learned at 64
  tokens in 2000 steps), AT, deep-shallow AT and the one-pass NATs (`LONG_SYSTEMS`), 2000
  steps each; the report adds latency against output length (8-64 tokens, batch 1 and 64,
  `latency_vs_length.png`). Results and measured times: experiments/results/long/.
- `quick`: tiny models, a small slice of the data, a few hundred steps (tests).

Each model is an ordinary training config (``config.at``, ``config.nat``, ...), so any
training key can be overridden, e.g. ``--config.at.num_train_steps=5000``.
"""

from pathlib import Path

import ml_collections

from attnlab.analysis.at_vs_nat import MAIN_MODELS, MODELS
from attnlab.analysis.systems import SYSTEMS
from attnlab.train.config import load_config_file, parse_variant
from attnlab.train.recipes import use_nat_recipe

# The first edition's eleven systems (the 2026-11-24 run, experiments/results/g2p/first_edition).
FIRST_EDITION = (
    "at_greedy",
    "at_beam4",
    "nat_length_pred",
    "nat_length_beam3",
    "nat_length_beam5",
    "nat_length_beam5_at_rescore",
    "nat_eos_cut",
    "nat_oracle_length",
    "nat_mask_predict4",
    "nat_mask_predict10",
    "nat_kd_length_pred",
)
# `long`: AT, deep-shallow AT and every kind of one-pass NAT, timed against output length.
LONG_SYSTEMS = (
    "at_greedy",
    "at_beam4",
    "at_deep_shallow_greedy",
    "at_deep_shallow_beam4",
    "nat_length_pred",
    "nat_ctc",
    "nat_dag_lookahead",
)
# `demo`: the two models `make demo` trains side by side, `at` and `nat` (the vanilla NAT).
DEMO_SYSTEMS = (
    "at_greedy",
    "at_beam4",
    "nat_length_pred",
    "nat_oracle_length",
    "nat_length_beam5_at_rescore",
)


# Issue 37's ablations train this many steps each (full `g2p`; the other forms train them as
# long as their main-table counterparts). Override one with --config.<model>.num_train_steps.
ABLATION_STEPS = 8000
# Glancing schedules (attnlab.nat.glancing): the ratio goes linearly from glancing_start to
# glancing_end over glancing_anneal_fraction of training, then holds. `linear` is the second
# edition's (Qian et al. 2021's shape on our budget); `anneal` DA-Transformer's (0.5 to 0.1
# over 200k of 300k updates, here over the first two thirds of training).
GLANCING = {
    "linear": dict(glancing_start=0.5, glancing_end=0.3, glancing_anneal_fraction=1.0),
    "anneal": dict(glancing_start=0.5, glancing_end=0.1, glancing_anneal_fraction=2 / 3),
}
# What the main table takes from the ablations, set once they have run (run plan above): the
# glancing schedule of nat_glat, nat_ctc_glat and nat_dag, and the DAG's graph size (vertices
# per source token; 0 = the dag recipe's default, 2).
MAIN_GLANCING = "linear"
MAIN_DAG_UPSAMPLE = 0
# The CTC canvas, in positions per source token, of every CTC model but the nat_ctc_x3
# ablation: 2 since issue 36 (equal or better validation WER at equal steps, 0.71x the step
# cost of the recipe's default 3; docs/training_profile.md, "Time to quality").
CTC_UPSAMPLE = 2
# The AT tuning grid: each entry changes one thing of the base AT (`at_tune_<name>`, trained
# ABLATION_STEPS and compared on validation). Sizes keep a training step within 1.5x of the
# base's by matmul FLOPs per token (g2p: d_model 192 -> 224 and d_ff 768 -> 896 is
# (224/192)^2 = 1.36x; 3+3 -> 4+4 layers 1.33x; the step times are to be measured). The main
# table's AT is picked with the variant `at=<name>` (`at=base`: unchanged).
AT_TUNING = {
    "wide": lambda c: _widen(c.model, 7 / 6),
    "deep": lambda c: c.model.update(
        num_encoder_layers=c.model.num_encoder_layers + 1,
        num_decoder_layers=c.model.num_decoder_layers + 1,
    ),
    "dropout": lambda c: c.model.update(dropout=0.3),
    "smoothing": lambda c: c.update(label_smoothing=0.2),
    "lr": lambda c: c.update(learning_rate=2 * c.learning_rate),
    "warmup": lambda c: c.update(warmup_steps=4 * c.warmup_steps),
}
AT_CHOICES = ("at=base", *(f"at={name}" for name in AT_TUNING))
_SIZE_KEYS = ("d_model", "num_heads", "d_ff", "num_encoder_layers", "num_decoder_layers")


def _copy(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(config.to_dict())


def _task_config(file: str, variant: str):
    return load_config_file(f"{Path(__file__).with_name(file)}:{variant}")


def _widen(model: ml_collections.ConfigDict, factor: float) -> None:
    """d_model times ``factor``, up to a multiple of 8 per head; d_ff in proportion."""
    step = 8 * model.num_heads
    wide = -(-int(model.d_model * factor) // step) * step
    model.update(d_ff=model.d_ff * wide // model.d_model, d_model=wide)


def _tuned(at: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """A copy of the AT config with the tuning grid's change ``name`` (``base``: none)."""
    tuned = _copy(at)
    if name != "base":
        AT_TUNING[name](tuned)
    return tuned


def _match_size(nat: ml_collections.ConfigDict, at: ml_collections.ConfigDict) -> None:
    """Matched size: the NAT copies the AT's width, depth and heads."""
    for key in _SIZE_KEYS:
        nat.model[key] = at.model[key]


def _glancing(config: ml_collections.ConfigDict, schedule: str) -> ml_collections.ConfigDict:
    config.update(GLANCING[schedule])
    return config


def _ctc(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A CTC NAT's config on the CTC_UPSAMPLE canvas; any other recipe's unchanged."""
    if config.model.nat_recipe == "ctc":
        config.model.upsample = CTC_UPSAMPLE
    return config


def _ablation_models(at, nat, *, steps: int | None) -> dict[str, ml_collections.ConfigDict]:
    """Issue 37's ablation models (analysis.at_vs_nat.ABLATION_MODELS), of the base AT's size,
    each ``steps`` long (None: as long as the AT and NAT given)."""
    nat = _copy(nat)
    _match_size(nat, at)
    ctc = lambda: _ctc(use_nat_recipe(_copy(nat), "ctc"))
    glat = lambda recipe, schedule: _glancing(
        _ctc(use_nat_recipe(_copy(nat), recipe, glancing=True)), schedule
    )
    models = {
        "at_8k": _copy(at),
        **{f"at_tune_{name}": _tuned(at, name) for name in AT_TUNING},
        # glancing: none, linear (the second edition's), annealed then held; on CTC and vanilla
        "nat_ctc_8k": ctc(),
        "nat_ctc_glat_linear": glat("ctc", "linear"),
        "nat_ctc_glat_anneal": glat("ctc", "anneal"),
        "nat_vanilla_8k": use_nat_recipe(_copy(nat), "vanilla"),
        "nat_glat_linear": glat("vanilla", "linear"),
        "nat_glat_anneal": glat("vanilla", "anneal"),
    }
    for factor in (2, 4, 8):  # the DAG's vertices per source token (model.upsample)
        models[f"nat_dag_x{factor}"] = glat("dag", "linear")
        models[f"nat_dag_x{factor}"].model.upsample = factor
    # The DAG of the graph size the main table takes, distilled: whether the main table's DAG
    # is distilled (issue 37: "distilled if that helps at 8,000 steps").
    models["nat_dag_8k_kd"] = _copy(models[f"nat_dag_x{MAIN_DAG_UPSAMPLE or 2}"])
    for factor in (2, 3):  # the CTC canvas, in positions per source token
        models[f"nat_ctc_x{factor}"] = ctc()
        models[f"nat_ctc_x{factor}"].model.upsample = factor
    if steps is not None:
        for model in models.values():
            model.num_train_steps = steps
    return models


def get_config(arg: str | None = None):
    variant = parse_variant(
        arg,
        config_name="at_vs_nat.py",
        groups={"task": ("g2p", "synthetic", "tfds", "gpu"), "at": AT_CHOICES},
        defaults={"task": "g2p", "at": "at=base"},
        flags=("quick", "small", "demo", "long"),
    )
    quick = ",quick" if variant["quick"] or variant["demo"] else ""
    task = variant["task"]
    if variant["long"] and task != "synthetic":
        raise ValueError("at_vs_nat.py variant 'long' needs the task 'synthetic'")
    if task in ("g2p", "gpu"):
        at, nat = _task_config("g2p.py", "at" + quick), _task_config("g2p.py", "nat" + quick)
    elif task == "synthetic":
        # `long` copies: at 64 tokens reverse was still far from learned
        # (experiments/results/long/README.md).
        synthetic_task = "copy" if variant["long"] else "reverse"
        at = _task_config("synthetic.py", f"at,{synthetic_task}" + quick)
        nat = _task_config("synthetic.py", f"nat,{synthetic_task}" + quick)
    else:
        at = _task_config("g2p.py", "at" + quick)
        nat = _task_config("g2p.py", "nat" + quick)
        for c in (at, nat):
            c.data.name = "tfds:ted_hrlr_translate/pt_to_en"
            c.data.update(input_key="pt", target_key="en", tokenizer="sentencepiece")
            c.model.max_len = 128
    if task == "gpu":
        # One GPU: a Transformer-base-wide model (d_model 512, 8 heads, d_ff 2048) on batches
        # of 512 words, matmuls in bfloat16 (float32 parameters and optimizer state; no loss
        # scaling needed). Not yet run: no GPU was available when it was sized (issue 18).
        for c in (at, nat):
            c.model.update(d_model=512, num_heads=8, d_ff=2048)
            c.update(batch_size=512, num_train_steps=30000, eval_batch_size=512)
            c.update(compute_dtype="bfloat16", warmup_steps=4000, eval_decode_examples=2048)
    if variant["small"]:
        for c in (at, nat):
            c.model.update(d_model=128, num_heads=4, d_ff=512)
            c.model.update(num_encoder_layers=2, num_decoder_layers=2)
            c.data.bucket_boundaries = (8, 12, 16)
            c.update(batch_size=64, num_train_steps=6000, warmup_steps=600)
            c.update(eval_every_steps=2000, checkpoint_every_steps=1000, eval_decode_examples=512)
    if variant["demo"]:
        # `make demo`: small enough to train the AT and the NAT in two minutes on 2 CPU cores,
        # big enough that AT and NAT both learn (WER well below 100%).
        for c in (at, nat):
            c.model.update(d_model=64, num_heads=4, d_ff=256)
            c.model.update(num_encoder_layers=2, num_decoder_layers=2)
            c.data.update(max_source_examples=10000, bucket_boundaries=(8, 12, 16))
            c.update(batch_size=64, num_train_steps=1200, warmup_steps=150, learning_rate=3e-3)
            c.update(eval_every_steps=1200, checkpoint_every_steps=600, eval_decode_examples=256)
    if variant["long"]:
        # Where NAT's speed matters: outputs up to 64 tokens (copy, lengths 1-64). Sized so
        # that every model reaches near-zero error (experiments/results/long/README.md).
        for c in (at, nat):
            c.data.update(synthetic_max_length=64, bucket_boundaries=(16, 32, 48))
            c.model.update(d_model=64, num_heads=4, d_ff=256)
            c.update(num_train_steps=2000, warmup_steps=400, learning_rate=2e-3)
            c.update(eval_every_steps=500, checkpoint_every_steps=500, eval_decode_examples=256)
    full_g2p = task == "g2p" and not (variant["quick"] or variant["small"] or variant["demo"])
    average = 1 if variant["quick"] or variant["small"] else 3  # config.average_checkpoints
    # The ablations and the AT tuning grid: the base AT's size, whichever AT the main table
    # takes (`at=<name>`), so that their records stay valid when it is chosen.
    ablations = _ablation_models(at, nat, steps=ABLATION_STEPS if full_g2p else None)
    # The main table: one budget, the AT's (20000 steps of 128 words on g2p), for every model.
    at = _tuned(at, variant["at"].removeprefix("at="))
    nat.update(num_train_steps=at.num_train_steps)
    _match_size(nat, at)
    # `nat` is the vanilla NAT with length prediction (Gu et al. 2018), the main table's plain
    # NAT and NPD's candidate generator; the task's default recipe (g2p: cmlm) would mask its
    # decoder input in training. The cmlm recipe is `nat_cmlm`, the mask-predict model.
    nat_cmlm = use_nat_recipe(_copy(nat), "cmlm")
    nat = use_nat_recipe(nat, "vanilla")
    # The deep-shallow AT (Kasai et al. 2021): the AT's layers moved to the encoder, one
    # decoder layer (g2p: 6+1 against 3+3, as g2p.py:deep_shallow; +4.7% parameters).
    at_ds = _copy(at)
    at_ds.model.update(
        num_encoder_layers=at.model.num_encoder_layers + at.model.num_decoder_layers,
        num_decoder_layers=1,
    )
    # One NAT per recipe, all of the same size as `nat` (attnlab.nat):
    # eos_canvas trains on the fixed canvas of the longest target (targets, EOS, then PAD), as
    # eos_cut decodes it; glancing (GLAT) on vanilla, ctc and dag, on MAIN_GLANCING's schedule.
    nat_eos = use_nat_recipe(_copy(nat), "eos_canvas")
    nat_glat = _glancing(use_nat_recipe(_copy(nat), "vanilla", glancing=True), MAIN_GLANCING)
    nat_ctc = _ctc(use_nat_recipe(_copy(nat), "ctc"))
    nat_ctc_glat = _glancing(_ctc(use_nat_recipe(_copy(nat), "ctc", glancing=True)), MAIN_GLANCING)
    nat_dag = _glancing(use_nat_recipe(_copy(nat), "dag", glancing=True), MAIN_GLANCING)
    nat_dag.model.upsample = MAIN_DAG_UPSAMPLE

    config = ml_collections.ConfigDict()
    config.task = task
    config.at = at
    config.at_ds = at_ds
    config.nat = nat
    config.nat_cmlm = nat_cmlm
    config.nat_eos = nat_eos
    config.nat_glat = nat_glat
    config.nat_ctc = nat_ctc
    config.nat_ctc_glat = nat_ctc_glat
    config.nat_dag = nat_dag
    # Distilled students: the same configs, trained on the AT model's beam outputs.
    config.nat_kd = _copy(nat)
    config.nat_dag_kd = _copy(nat_dag)
    config.nat_ctc_kd = _copy(nat_ctc)
    if full_g2p:
        # Each main-table model keeps the checkpoints its average takes at ABLATION_STEPS, so
        # that the test split can be decoded there too (system `<name>@8000`, item 3).
        early = range(ABLATION_STEPS - (average - 1) * 1000, ABLATION_STEPS + 1, 1000)
        for key in MAIN_MODELS:
            config[key].keep_checkpoint_steps = tuple(early)
    for key, model in ablations.items():
        config[key] = model
    config.distill = True  # train the *_kd models on the AT model's beam outputs
    config.distill_beam_size = 4
    config.distill_batch_size = 256
    config.systems = ",".join(SYSTEMS)  # every system (the second edition)
    config.test_split = "test"
    config.max_test_examples = 0  # 0: the whole split
    config.eval_batch_size = 64  # also the batch of the throughput figure
    config.latency_examples = 200  # sequences timed one by one at batch 1
    # Every system is timed in the same passes, side by side (analysis.latency.side_by_side):
    # each figure and speed ratio is the median over the passes, with the range.
    config.timing_passes = 3
    # Latency against output length (report plot `latency_vs_length.png`): random sources of
    # each of these lengths, decoded at each batch size, every system side by side. () = off.
    config.latency_lengths = ()
    config.latency_batches = (1, 64)
    config.bootstrap_samples = 1000
    config.seed = 0
    # Train (or resume) just this model and exit (a key of analysis.at_vs_nat.MODELS). Lets the
    # models train as parallel processes (a *_kd model after `at` has finished); a final run
    # without it resumes them all and decodes.
    config.train_only = ""
    # A directory of recorded outputs (analysis.recorded): every system decoded is recorded
    # there, with the teacher's outputs when it distills; a system whose model has no
    # checkpoint in the workdir is taken from there (and timed on a fresh model at the recorded
    # lengths), and a student whose teacher has none trains on the recorded teacher outputs.
    # The full g2p run's models train over several sessions, on machines that do not keep
    # each other's checkpoints: experiments/results/g2p/second_edition/recorded. "" = none.
    config.recorded = ""
    # A Markdown file the report includes after its measured findings: the written verdict on
    # each (agrees with its source or not, and why), kept apart so that a rerun keeps it. The
    # full g2p run's: experiments/results/g2p/second_edition/writeup.md. "" = none.
    config.writeup = ""
    # The models whose validation WER the report draws against training steps and training
    # time (`learning_curves.png`): the AT, the deep-shallow AT and the best two NATs (the
    # second edition's; set from the ablations). Only those decoded in the run are drawn.
    config.curve_models = "at,at_ds,nat_ctc_kd,nat_ctc"
    # Decode with the average of each model's last N checkpoints (Vaswani et al. 2017 averaged
    # their last 5); 1 = the final checkpoint only. Every model, the distillation teacher
    # included, gets the same treatment. On the full g2p NAT, averaging the checkpoints of
    # steps 6000-8000 cut validation WER from 39.1% to 37.1% (length_pred, 2462 words).
    # `small` keeps 1, the setting its committed results were measured with.
    config.average_checkpoints = average
    # The scale of the run, for the report: quick and demo runs draw no findings.
    config.scale = next((v for v in ("quick", "demo", "small") if variant[v]), "full")
    if variant["demo"]:
        # Two models (AT and NAT) and five systems fit the 5-minute budget of `make demo`
        # (each system costs about 10 s of compiling and decoding); the other rows are left to
        # the full run.
        config.systems = ",".join(DEMO_SYSTEMS)
        config.distill = False
        config.max_test_examples = 512
        config.latency_examples = 32
        config.bootstrap_samples = 200
        config.average_checkpoints = 1
    if variant["small"]:
        config.systems = ",".join(FIRST_EDITION)  # as its committed results were measured
    if variant["long"]:
        config.systems = ",".join(LONG_SYSTEMS)
        config.distill = False
        config.max_test_examples = 1024
        config.latency_lengths = (8, 16, 32, 64)
    if variant["quick"]:
        # Enough steps for the teacher to emit real phonemes, so distillation has data. The
        # other models only show that every system runs and scores (finite values): 20 steps.
        # Every model: one batch shape and one evaluation (compiling is most of it).
        for key in MODELS:
            steps = 400 if key == "at" else 20
            config[key].data.bucket_boundaries = ()
            config[key].update(
                num_train_steps=steps,
                eval_every_steps=steps,
                checkpoint_every_steps=steps,
                eval_decode_examples=16,
            )
        config.at.keep_checkpoint_steps = (200,)  # the teacher decoded at step 200 too (tests)
        config.max_test_examples = 128
        config.latency_examples = 16
        config.bootstrap_samples = 200
        config.distill_batch_size = 128
    return config
