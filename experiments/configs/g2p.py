r"""Grapheme-to-phoneme on CMUdict (letters -> phonemes, no stress), AT or NAT Transformer.

    python experiments/train.py --config=experiments/configs/g2p.py:at --workdir=runs/g2p_at
    python experiments/train.py --config=experiments/configs/g2p.py:nat --workdir=runs/g2p_nat

Speed, measured with this config for 300 (`at`) and 200 (`nat`) steps on the 2-core CPU
development machine while other jobs shared it (load 3-5): `at` 0.4-0.9 steps/s (700-1600
tokens/s), `nat` 0.5-0.8 steps/s (1000-1500 tokens/s), so the 20000 steps take 6-12 hours
there; a resumed run trains again about 15 s after launch (0.65 s of it restoring).

Expected result: TO BE MEASURED (not yet run to the end). What we expect from the G2P
literature for a 3+3-layer Transformer on CMUdict without stress: `at` reaches a word error
rate (eval_wer) around 0.25-0.30 and a phoneme error rate (eval_per) around 0.06-0.08 on the
validation split; `nat` (CMLM-style masking, length beam 3 + 4 mask-predict iterations) is
expected to be several WER points behind `at`.

Variants (comma-separated after the colon):
- `at` (default) | `nat`: autoregressive `Seq2Seq` or non-autoregressive `NATSeq2Seq`.
- `quick`: a tiny model on a 2000-word build of the data, 40 steps; runs end to end in seconds.
"""

from attnlab.data import data_config
from attnlab.nn.config import model_config
from attnlab.train.config import base_config, make_quick, parse_variant


def get_config(arg: str | None = None):
    variant = parse_variant(
        arg, config_name="g2p.py", groups={"model": ("at", "nat")}, defaults={"model": "at"}
    )
    config = base_config()
    # Length buckets: most words are under 12 letters, so padding every batch to 32 wastes
    # most of the step (buckets made training about 6x faster on the 2-core CPU).
    config.data = data_config(name="cmudict_g2p", bucket_boundaries=(8, 12, 16))
    config.model = model_config(
        name="seq2seq" if variant["model"] == "at" else "nat",
        d_model=256,
        num_heads=4,
        d_ff=1024,
        num_encoder_layers=3,
        num_decoder_layers=3,
        dropout=0.1,
    )
    config.update(
        batch_size=128,
        num_train_steps=20000,
        log_every_steps=100,
        eval_every_steps=2000,
        checkpoint_every_steps=1000,
        learning_rate=1e-3,
        warmup_steps=1000,
        schedule="rsqrt",
        label_smoothing=0.1,
        eval_decode_examples=1024,
        decode_method="beam",
        beam_size=4,
    )
    if variant["model"] == "nat":
        # A G2P target is about as long as the word: predict the length as an offset from the
        # source length, feed the decoder copied source embeddings, and train CMLM-style so
        # that mask-predict refinement has something to refine.
        config.model.update(length_mode="offset", decoder_input="copy_source")
        config.update(nat_masking="uniform", nat_strategy="length_beam:3+mask_predict:4")
    if variant["quick"]:
        make_quick(config)
        config.update(decode_method="greedy")
    return config
