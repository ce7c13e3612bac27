r"""AT versus NAT decoding: how much quality does parallel decoding give up, for how much speed?

    python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/at_vs_nat_g2p
    python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p,demo --workdir=runs/demo   # make demo

The full `g2p` run, as committed in experiments/results/g2p/, trains its four models as
separate processes (the last command resumes them all and decodes):

    C="python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/g2p"
    $C --config.train_only=at    # alone on both cores (wall times: experiments/results/g2p)
    taskset -c 0 $C --config.train_only=nat & taskset -c 1 $C --config.train_only=nat_eos & wait
    $C --config.train_only=nat_kd    # needs the finished AT model (its teacher)
    $C

Expected result (full `g2p`, 2 CPU cores): see experiments/results/g2p/report.md. The target
is AT at WER <= 27% and PER <= 7% on the cmudict_g2p test split after at most 90 minutes of
training. The `demo` form (`make demo`) trains the AT and the NAT at a small scale; measured
on 2 cores (BUILD_NOTES.md, "make demo"): test WER 63.3% (AT greedy) and 83.8% (NAT
length_pred) on 512 test words of a 10000-word build, in 4 min 34 s from a fresh clone. The `quick` form checks the plumbing
(tests), not the quality.

Variants (comma-separated after the colon):
- `g2p` (default) | `synthetic` (reverse) | `tfds` (a translation dataset from the TFDS
  catalog, `--config.data_name=tfds:ted_hrlr_translate/pt_to_en` by default) | `gpu` (g2p
  with a model and batch sized for one GPU).
- `small`: a 2+2-layer, d_model 128 model with length buckets, a few minutes of training per
  model on 2 CPU cores: outputs are real, quality is far from the full config's.
- `demo`: 2+2 layers, d_model 64, 1200 steps on a 10000-word build, AT and NAT only, five
  systems (`make demo`).
- `quick`: tiny models, a small slice of the data, a few hundred steps (tests).

Each model is an ordinary training config (``config.at``, ``config.nat``, ...), so any
training key can be overridden, e.g. ``--config.at.num_train_steps=5000``.
"""

from pathlib import Path

import ml_collections

from attnlab.train.config import load_config_file, parse_variant
from attnlab.train.recipes import use_nat_recipe

SYSTEMS = (
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
DEMO_SYSTEMS = (
    "at_greedy",
    "at_beam4",
    "nat_length_pred",
    "nat_oracle_length",
    "nat_mask_predict4",
)


def _task_config(file: str, variant: str):
    return load_config_file(f"{Path(__file__).with_name(file)}:{variant}")


def get_config(arg: str | None = None):
    variant = parse_variant(
        arg,
        config_name="at_vs_nat.py",
        groups={"task": ("g2p", "synthetic", "tfds", "gpu")},
        defaults={"task": "g2p"},
        flags=("quick", "small", "demo"),
    )
    quick = ",quick" if variant["quick"] or variant["demo"] else ""
    task = variant["task"]
    if task in ("g2p", "gpu"):
        at, nat = _task_config("g2p.py", "at" + quick), _task_config("g2p.py", "nat" + quick)
    elif task == "synthetic":
        at = _task_config("synthetic.py", "at,reverse" + quick)
        nat = _task_config("synthetic.py", "nat,reverse" + quick)
    else:
        at = _task_config("g2p.py", "at" + quick)
        nat = _task_config("g2p.py", "nat" + quick)
        for c in (at, nat):
            c.data.name = "tfds:ted_hrlr_translate/pt_to_en"
            c.data.update(input_key="pt", target_key="en", tokenizer="sentencepiece")
            c.model.max_len = 128
    if task == "gpu":
        for c in (at, nat):
            c.model.update(d_model=512, num_heads=8, d_ff=2048)
            c.update(batch_size=512, num_train_steps=30000, eval_batch_size=512)
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
    if task == "g2p" and not variant["quick"] and not variant["small"] and not variant["demo"]:
        # The whole experiment trains four models on 2 CPU cores: the NATs get 2/3 of the AT's
        # steps so that it fits in about two hours with two models training side by side.
        nat.update(num_train_steps=8000)
    # Matched size: the NAT copies the AT's width, depth and heads.
    for key in ("d_model", "num_heads", "d_ff", "num_encoder_layers", "num_decoder_layers"):
        nat.model[key] = at.model[key]
    # The eos_cut NAT: recipe eos_canvas, no length head; trained on the fixed canvas of the
    # longest target with the targets followed by EOS and then PAD, as eos_cut decodes it.
    nat_eos = use_nat_recipe(ml_collections.ConfigDict(nat.to_dict()), "eos_canvas")
    nat_kd = ml_collections.ConfigDict(nat.to_dict())

    config = ml_collections.ConfigDict()
    config.task = task
    config.at = at
    config.nat = nat
    config.nat_eos = nat_eos
    config.nat_kd = nat_kd
    config.distill = True  # train nat_kd on the AT model's beam outputs of the train split
    config.distill_beam_size = 4
    config.distill_batch_size = 256
    config.systems = ",".join(SYSTEMS)
    config.test_split = "test"
    config.max_test_examples = 0  # 0: the whole split
    config.eval_batch_size = 64  # also the batch of the throughput figure
    config.latency_examples = 200  # sequences timed one by one at batch 1
    config.bootstrap_samples = 1000
    config.seed = 0
    # Train (or resume) just this model and exit: at | nat | nat_eos | nat_kd. Lets the models
    # train as parallel processes (nat_kd after at has finished); a final run without it
    # resumes them all and decodes.
    config.train_only = ""
    # Decode with the average of each model's last N checkpoints (Vaswani et al. 2017 averaged
    # their last 5); 1 = the final checkpoint only. Every model, the distillation teacher
    # included, gets the same treatment. On the full g2p NAT, averaging the checkpoints of
    # steps 6000-8000 cut validation WER from 39.1% to 37.1% (length_pred, 2462 words).
    # `small` keeps 1, the setting its committed results were measured with.
    config.average_checkpoints = 1 if variant["quick"] or variant["small"] else 3
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
    if variant["quick"]:
        # Enough steps for the teacher to emit real phonemes, so distillation has data.
        for c in (config.at, config.nat, config.nat_eos, config.nat_kd):
            c.update(num_train_steps=400, eval_every_steps=200, checkpoint_every_steps=200)
        config.max_test_examples = 128
        config.latency_examples = 16
        config.bootstrap_samples = 200
        config.distill_batch_size = 128
    return config
