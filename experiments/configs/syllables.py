r"""Sequence classification: the number of syllables of an English word from its letters.

    python experiments/train.py --config=experiments/configs/syllables.py --workdir=runs/syllables
    python experiments/syllables_report.py --workdir=runs/syllables

Measured (experiments/results/syllables/): 9 min 35 s on one shared CPU core; test accuracy
92.40% [91.88, 92.93] over 9,937 words (validation 91.9%), against 85.03% for the vowel-group
rule (attnlab.analysis.syllables). Labels are 0..7 and 8+ syllables from CMUdict.

Variants: none, or `quick` (a tiny model on 2000 words, 40 steps; runs in seconds).
"""

from attnlab.data import data_config
from attnlab.nn.config import model_config
from attnlab.train.config import base_config, make_quick, parse_variant


def get_config(arg: str | None = None):
    variant = parse_variant(arg, config_name="syllables.py", groups={}, defaults={})
    config = base_config()
    # Length buckets, as g2p.py: most words are under 12 letters, so padding to 32 wastes steps.
    config.data = data_config(name="cmudict_syllables", bucket_boundaries=(8, 12, 16))
    config.model = model_config(
        name="classifier",
        d_model=128,
        num_heads=4,
        d_ff=512,
        num_encoder_layers=3,
        dropout=0.1,
    )
    config.update(
        batch_size=64,
        num_train_steps=5000,
        log_every_steps=100,
        eval_every_steps=1000,
        checkpoint_every_steps=1000,
        learning_rate=1e-3,
        warmup_steps=500,
    )
    if variant["quick"]:
        make_quick(config)
    return config
