"""The third edition's configs (issue 37), without training: one budget for the main table,
the ablations' budget and settings, the AT tuning grid, the kept checkpoints, and every
main-table model within 5% of the AT's parameters (on shapes alone, ``nnx.eval_shape``)."""

import pytest

import attnlab.train.resolve as resolve_module
from attnlab.analysis.at_vs_nat import (
    ABLATION_MODELS,
    MAIN_MODELS,
    MODELS,
    aliases,
    is_distilled,
    parameter_counts,
    parse_systems,
)
from attnlab.analysis.systems import SYSTEMS
from attnlab.data.sources import DatasetInfo
from attnlab.data.vocab import Vocab
from attnlab.train.config import check_config, load_config_file

CONFIG = "experiments/configs/at_vs_nat.py"
# The 39 ARPAbet phonemes without stress, and the 28 symbols of the words: with the 5
# specials, the 33 and 44 tokens of the full cmudict_g2p build (experiments/configs/g2p.py).
PHONEMES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH"
).split()
LETTERS = list("abcdefghijklmnopqrstuvwxyz'.")


@pytest.fixture
def g2p_vocabularies(monkeypatch):
    """The full g2p dataset's sizes, without building it."""
    info = DatasetInfo(
        name="cmudict_g2p",
        task="seq2seq",
        src_vocab=Vocab(LETTERS),
        tgt_vocab=Vocab(PHONEMES, tokenizer="space"),
        num_classes=0,
        max_len=32,
        max_target_len=32,
        split_sizes={"train": 121000, "validation": 2462, "test": 10097},
        label_names=(),
        data_dir="",
    )
    monkeypatch.setattr(resolve_module, "dataset_info", lambda data: info)


def _differences(a, b, prefix=""):
    """The keys (dotted) whose values differ between two config dicts."""
    out = set()
    for key in set(a) | set(b):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.add(prefix + key)
    return out


def test_every_main_model_trains_the_ats_budget_and_every_ablation_8000_steps():
    config = load_config_file(f"{CONFIG}:g2p")
    assert set(MODELS) <= set(config.keys())
    assert config.at.num_train_steps == 20000 and config.at.batch_size == 128
    for key in MAIN_MODELS:
        assert (config[key].num_train_steps, config[key].batch_size) == (20000, 128), key
        # the checkpoints the average at step 8000 takes (config.average_checkpoints = 3)
        assert config[key].keep_checkpoint_steps == (6000, 7000, 8000), key
    for key in ABLATION_MODELS:
        assert (config[key].num_train_steps, config[key].batch_size) == (8000, 128), key
        assert config[key].keep_checkpoint_steps == (), key
        check_config(config[key])  # a valid training config
    # the systems of every model are known names, and every ablation model has one (the
    # tuning grid's are decoded on the validation split: at_tune_<name>_beam4)
    assert set(ABLATION_MODELS) <= {SYSTEMS[s].model for s in SYSTEMS}


def test_the_ablations_change_one_setting_each():
    config = load_config_file(f"{CONFIG}:g2p").to_dict()
    changed = lambda key, base: _differences(config[key], config[base])
    glancing = ("glancing_start", "glancing_end", "glancing_anneal_fraction")
    linear = tuple(config["nat_ctc_glat_linear"][k] for k in glancing)
    anneal = tuple(config["nat_ctc_glat_anneal"][k] for k in glancing)
    assert linear == (0.5, 0.3, 1.0) and anneal == (0.5, 0.1, pytest.approx(2 / 3))
    assert changed("nat_ctc_glat_linear", "nat_ctc_8k") == {"glancing"}
    assert changed("nat_ctc_glat_anneal", "nat_ctc_glat_linear") == {*glancing[1:]}
    assert changed("nat_glat_anneal", "nat_glat_linear") == {*glancing[1:]}
    assert changed("nat_glat_linear", "nat_vanilla_8k") == {"glancing"}
    assert config["nat_vanilla_8k"]["model"]["nat_recipe"] == "vanilla"
    for factor in (2, 4, 8):
        assert config[f"nat_dag_x{factor}"]["model"]["upsample"] == factor
        assert changed(f"nat_dag_x{factor}", "nat_dag_x2") <= {"model.upsample"}
    dag = config["nat_dag_x2"]
    assert dag["model"]["nat_recipe"] == "dag" and tuple(dag[k] for k in glancing) == linear
    assert config["nat_ctc_8k"]["model"]["upsample"] == 2
    for factor in (2, 3):
        assert config[f"nat_ctc_x{factor}"]["model"]["upsample"] == factor
        # every CTC model is on the 2x canvas since issue 36: x2 is nat_ctc_8k itself
        expected = set() if factor == 2 else {"model.upsample"}
        assert changed(f"nat_ctc_x{factor}", "nat_ctc_8k") == expected
    assert changed("at_8k", "at") == {"num_train_steps", "keep_checkpoint_steps"}


def test_the_at_tuning_grid_and_the_chosen_at(g2p_vocabularies):
    config = load_config_file(f"{CONFIG}:g2p")
    grid = {k.removeprefix("at_tune_") for k in ABLATION_MODELS if k.startswith("at_tune_")}
    assert len(grid) == 6  # the allowance
    base = config.at_8k.to_dict()
    assert {name: _differences(config[f"at_tune_{name}"].to_dict(), base) for name in grid} == {
        "wide": {"model.d_model", "model.d_ff"},
        "deep": {"model.num_encoder_layers", "model.num_decoder_layers"},
        "dropout": {"model.dropout"},
        "smoothing": {"label_smoothing"},
        "lr": {"learning_rate"},
        "warmup": {"warmup_steps"},
    }
    assert config.at_tune_lr.learning_rate == 2 * config.at_8k.learning_rate

    # the size variants cost at most 1.5x the base's matmul FLOPs per token: the dense layers
    # of an encoder layer (4 d^2 + 2 d d_ff) and of a decoder layer (with cross-attention)
    def flops(m):
        layer = 4 * m.d_model**2 + 2 * m.d_model * m.d_ff
        return m.num_encoder_layers * layer + m.num_decoder_layers * (layer + 4 * m.d_model**2)

    for name in ("wide", "deep"):
        assert 1.2 < flops(config[f"at_tune_{name}"].model) / flops(config.at_8k.model) <= 1.5
    # `at=wide`: the main table's AT and NATs take the wide size; the ablations keep the base
    wide = load_config_file(f"{CONFIG}:g2p,at=wide")
    assert wide.at.to_dict() == {**config.at_tune_wide.to_dict(), **_main_only(config.at)}
    for key in ("at_ds", "nat", "nat_ctc_kd", "nat_dag"):
        assert wide[key].model.d_model == 224 and wide[key].model.d_ff == 896
    for key in ABLATION_MODELS:
        assert wide[key].to_dict() == config[key].to_dict(), key
    counts = parameter_counts(wide, ("at", "nat_ctc", "nat_dag"))
    assert all(abs(n / counts["at"] - 1) <= 0.05 for n in counts.values())
    with pytest.raises(ValueError, match="unknown variant 'at=huge' .* valid: .*at=base, at=wide"):
        load_config_file(f"{CONFIG}:g2p,at=huge")


def _main_only(at):
    return {
        "num_train_steps": at.num_train_steps,
        "keep_checkpoint_steps": at.keep_checkpoint_steps,
    }


def test_every_main_table_model_is_within_5_percent_of_the_ats_parameters(g2p_vocabularies):
    config = load_config_file(f"{CONFIG}:g2p")
    counts = parameter_counts(config, MAIN_MODELS)
    assert counts["at"] == 3_128_832  # g2p.py's figure for the 3+3 AT with these vocabularies
    assert counts["at_ds"] == 3_276_672
    assert counts["nat_dag"] > counts["nat_ctc"] > counts["at"]  # the DAG's links, CTC's marks
    for key, n in counts.items():
        assert abs(n / counts["at"] - 1) <= 0.05, (key, n)


def test_systems_at_a_step_are_parsed_and_bad_ones_refused():
    assert parse_systems("at_beam4, at_beam4@8000") == ["at_beam4", "at_beam4@8000"]
    with pytest.raises(ValueError, match="unknown system 'nat_magic@8000'; valid: at_greedy"):
        parse_systems("nat_magic@8000")
    for bad in ("at_beam4@", "at_beam4@0", "at_beam4@8k"):
        with pytest.raises(ValueError, match="the step after '@' must be a positive integer"):
            parse_systems(bad)


@pytest.mark.parametrize("variant", ["g2p", "g2p,quick"])
def test_models_of_one_config_are_aliased_and_no_others(variant):
    """``aliases`` against every pair of models compared by hand: an alias's config equals its
    target's, which comes earlier in MODELS; any two other models differ (distilled ones aside,
    their data is set at run time)."""
    config = load_config_file(f"{CONFIG}:{variant}")
    same_as = aliases(config)
    keys = [k for k in MODELS if not is_distilled(k)]
    for key, target in same_as.items():
        assert config[key].to_dict() == config[target].to_dict()
        assert MODELS.index(target) < MODELS.index(key) and target not in same_as
    own = [k for k in keys if k not in same_as]
    for i, a in enumerate(own):
        for b in own[i + 1 :]:
            assert config[a].to_dict() != config[b].to_dict(), (a, b)
    if variant == "g2p":  # CTC_UPSAMPLE is 2: the canvas ablation's 2x is nat_ctc_8k
        assert same_as == {"nat_ctc_x2": "nat_ctc_8k"}
