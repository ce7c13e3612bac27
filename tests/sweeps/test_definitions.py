"""The six sweeps of the study notes expand into the runs they promise, with valid configs."""

from pathlib import Path

import pytest
from absl import flags
from ml_collections import config_flags

from attnlab.nn import config as nn_config
from attnlab.sweeps.spec import STEP_KEYS, build_config, expand, get_sweep, load_sweeps
from attnlab.train.config import load_config_file

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
SWEEPS = load_sweeps(CONFIGS / "ablations.py")
CHOICES = {
    "model.attention": nn_config.ATTENTIONS,
    "model.norm": nn_config.NORMS,
    "model.norm_position": nn_config.NORM_POSITIONS,
    "model.position": nn_config.POSITIONS,
    "model.input": nn_config.INPUTS,
}


@pytest.fixture(scope="module")
def expanded():
    return {
        (name, quick): expand(SWEEPS[name], configs_dir=CONFIGS, seeds=2, quick=quick)
        for name in SWEEPS
        for quick in (False, True)
    }


def test_the_seven_sweeps_have_the_settings_the_study_asks_for(expanded):
    assert list(SWEEPS) == [
        "norm_batch",
        "attention_scores",
        "heads",
        "position",
        "attention_vs_cnn",
        "input",
        "address",
    ]
    settings = {n: len(expanded[n, False][0]) // 2 for n in SWEEPS}  # two seeds each
    assert settings == {
        "norm_batch": 3 * 6 + 3,  # pre-norm grid, and post-norm at batch 64
        "attention_scores": 6,
        "heads": 4,
        "position": 5 * 2,
        "attention_vs_cnn": 1 + 3,
        "input": 2,
        "address": 4,  # the base tagger, then one-hot, conv, BatchNorm one at a time
    }
    address = {r.name: dict(r.settings) for r in expanded["address", False][0] if not r.seed}
    assert address == {
        "base": {},
        "one_hot": {"model.input": "one_hot"},
        "conv": {"model.attention": "conv"},
        "batchnorm": {"model.norm": "batch"},
    }
    for quick in (False, True):
        for runs, _ in (expanded[n, quick] for n in SWEEPS):
            paths = [r.relpath for r in runs]
            assert len(set(paths)) == len(paths)
            assert [r.seed for r in runs] == sorted(r.seed for r in runs)  # seed-major order
            assert all(p.endswith(f"/seed{r.seed}") for p, r in zip(paths, runs, strict=True))


def test_every_model_choice_on_an_axis_is_one_the_model_accepts():
    for sweep in SWEEPS.values():
        for grid in sweep.grids:
            for key, values in {**grid.axes, **{k: [v] for k, v in grid.fixed.items()}}.items():
                if key in CHOICES:
                    assert set(values) <= set(CHOICES[key]), (sweep.name, key)


def test_norm_batch_sees_a_fixed_number_of_examples(expanded):
    """batch_size * steps is the base config's, up to rounding the steps to an integer."""
    for quick in (False, True):
        configs = expanded["norm_batch", quick][1].values()
        base = load_config_file(CONFIGS / ("g2p.py:at,quick" if quick else "g2p.py:at"))
        if not quick:
            base.update(
                {k: v for k, v in SWEEPS["norm_batch"].grids[0].budget.items() if "." not in k}
            )
        for key in STEP_KEYS:
            examples = base.batch_size * base[key]
            assert all(abs(c.batch_size * c[key] - examples) <= c.batch_size / 2 for c in configs)
        assert {c.batch_size for c in configs} == {4, 8, 16, 32, 64, 128}
    full = expanded["norm_batch", False][1].values()
    assert {c.batch_size * c.num_train_steps for c in full} == {64 * 2000}
    post = [c for c in full if c.model.norm_position == "post"]
    assert sorted((c.model.norm, c.batch_size) for c in post if c.seed == 0) == [
        ("batch", 64),
        ("layer", 64),
        ("rms", 64),
    ]


def test_heads_keep_d_model_and_position_includes_the_reverse_task(expanded):
    heads = expanded["heads", False][1].values()
    assert {c.model.d_model for c in heads} == {64}
    assert sorted({c.model.num_heads for c in heads}) == [1, 2, 4, 8]
    position = expanded["position", False][1].values()
    reverse = [c for c in position if c.data.name == "synthetic_seq2seq"]
    assert {c.data.synthetic_task for c in reverse} == {"reverse"}
    assert {c.model.position for c in reverse} == set(nn_config.POSITIONS)
    cnn = expanded["attention_vs_cnn", False][1].values()
    assert sorted((c.model.attention, c.model.conv_kernel) for c in cnn if c.seed == 0) == [
        ("conv", 3),
        ("conv", 5),
        ("conv", 9),
        ("softmax", 3),
    ]


def test_quick_form_uses_the_quick_variants(expanded):
    for name in SWEEPS:
        runs, configs = expanded[name, True]
        assert all(r.task.endswith("quick") for r in runs)
        assert all(c.model.d_model == 32 for c in configs.values())


def test_command_line_flags_give_the_same_config_as_the_checks(expanded):
    """What train.py parses (ml_collections config_flags) is what expand validated."""
    for name in ("norm_batch", "position", "attention_vs_cnn"):
        runs, configs = expanded[name, False]
        for run in (runs[0], runs[-1]):
            argv = ["train.py", *run.config_args(CONFIGS)]
            parsed = flags.FlagValues()
            config_flags.DEFINE_config_file("config", flag_values=parsed, sys_argv=argv)
            parsed(argv)
            assert parsed.config.to_dict() == configs[run.relpath].to_dict()


def test_unknown_sweep_and_bad_overrides_raise_one_line():
    with pytest.raises(ValueError, match=r"^unknown sweep 'x'; valid: norm_batch, "):
        get_sweep(SWEEPS, "x")
    base = load_config_file(CONFIGS / "g2p.py:at,quick")
    with pytest.raises(ValueError, match="config key 'batch_size' takes a int"):
        build_config(base, {"batch_size": "big"})
    with pytest.raises(ValueError, match="unknown model.norm 'group'; valid: layer, batch, rms"):
        expand(SWEEPS["norm_batch"], configs_dir=CONFIGS, seeds=1, axes={"model.norm": ["group"]})
