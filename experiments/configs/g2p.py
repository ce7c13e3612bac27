r"""Grapheme-to-phoneme on CMUdict (letters -> phonemes, no stress), AT or NAT Transformer.

    python experiments/train.py --config=experiments/configs/g2p.py:at --workdir=runs/g2p_at
    python experiments/train.py --config=experiments/configs/g2p.py:nat --workdir=runs/g2p_nat

Expected result (`at`), with the earlier settings (learning rate 1e-3 over 1000 warm-up
steps, buckets 8/12/16): test WER 25.4% and PER 6.17% with beam 4, after about an hour on 2
CPU cores; experiments/results/g2p/first_edition/report.md has that AT-vs-NAT run.

Time (issue 36; docs/training_profile.md, "Time to quality"): this config's learning rate,
buckets and CTC canvas reach the earlier config's validation WER at 4000 steps in 2750 steps
(AT) and 3500 (CTC NAT). Measured step times on one core of the 2-core CPU: 0.406 s (`at`)
and 0.657 s (`nat,ctc`) (`python benchmarks/time_to_quality.py ...`), so 20000 steps take
about 2.3 h (AT) and 3.7 h (CTC NAT) of one core, plus evaluation; the 4000-step AT run took
53 min on one core, sharing it with the CTC run for its first half.

Size: d_model 192, 4 heads, d_ff 768, 3+3 layers, 20000 steps of 128 words (about 21 epochs
of the 121k training words), cut from d_model 256 so that the AT model trains in under 90
minutes on the 2-core CPU.

Variants (comma-separated after the colon):
- `at` (default) | `deep_shallow` | `nat`: autoregressive `Seq2Seq` (3+3 layers); the fair AT
  baseline of Kasai et al. 2021 ("Deep Encoder, Shallow Decoder"; they used 12+1), a deep
  encoder and a one-layer decoder, here 6+1 layers at about the 3+3 model's parameter count
  (3,276,672 against 3,128,832 parameters with the g2p vocabularies, 33 letters and 44
  phonemes with specials; 5+1 would have 2,832,000); or non-autoregressive `NATSeq2Seq`.
- `vanilla` | `cmlm` (default) | `eos_canvas` | `ctc` | `dag`: the NAT recipe
  (`attnlab.nat`), e.g. `nat,ctc`; `glat` adds glancing training (vanilla, ctc,
  dag).
- `quick`: a tiny model on a 2000-word build of the data, 40 steps; runs end to end in seconds.
"""

from attnlab.data import data_config
from attnlab.nat import RECIPES
from attnlab.nn.config import model_config
from attnlab.train.config import base_config, make_quick, parse_variant
from attnlab.train.recipes import use_nat_recipe


def get_config(arg: str | None = None):
    variant = parse_variant(
        arg,
        config_name="g2p.py",
        groups={"model": ("at", "deep_shallow", "nat"), "recipe": tuple(RECIPES)},
        defaults={"model": "at", "recipe": "cmlm"},
        flags=("quick", "glat"),
    )
    words = {w.strip() for w in (arg or "").split(",")}
    if variant["model"] != "nat" and words & {*RECIPES, "glat"}:
        raise ValueError(f"g2p.py variants {sorted(words & {*RECIPES, 'glat'})} need nat")
    config = base_config()
    # Length buckets: most words are under 12 letters, so padding every batch to 32 wastes
    # most of the step; buckets 2 wide fill 89% of the positions against 79% for 8/12/16
    # (docs/training_profile.md, "Time to quality").
    config.data = data_config(name="cmudict_g2p", bucket_boundaries=(6, 8, 10, 12, 14, 16, 20))
    config.model = model_config(
        name="nat" if variant["model"] == "nat" else "seq2seq",
        d_model=192,
        num_heads=4,
        d_ff=768,
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
        # docs/training_profile.md, "Time to quality": 2e-3 with 500 warm-up steps reaches
        # the 1e-3/1000 run's validation WER in fewer steps.
        learning_rate=2e-3,
        warmup_steps=500,
        schedule="rsqrt",
        label_smoothing=0.1,
        eval_decode_examples=1024,
        decode_method="beam",
        beam_size=4,
    )
    if variant["model"] == "deep_shallow":
        config.model.update(num_encoder_layers=6, num_decoder_layers=1)
    if variant["model"] == "nat":
        # A G2P target is about as long as the word: feed the decoder copied source
        # embeddings; a length head predicts the length as an offset from the source length.
        # The default recipe, cmlm, decodes with length_beam:3+mask_predict:4.
        config.model.update(decoder_input="copy_source")
        use_nat_recipe(config, variant["recipe"], glancing=variant["glat"])
        if variant["recipe"] == "ctc":
            # A phoneme string is about as long as its word: a canvas of 2x the letters leaves
            # 0.036% of training pairs impossible and costs 0.71x the step of 3x
            # (docs/training_profile.md).
            config.model.upsample = 2
    if variant["quick"]:
        make_quick(config)
        config.update(decode_method="greedy")
    return config
