"""Config variants and checks: unknown words, keys and values give one-line errors."""

import pytest
from train_testing import quick_config

from attnlab.train.config import base_config, check_training, parse_variant
from attnlab.train.resolve import resolve_config

GROUPS = {"model": ("at", "nat"), "task": ("copy", "reverse", "sort")}
DEFAULTS = {"model": "at", "task": "copy"}


def _parse(arg):
    return parse_variant(arg, config_name="synthetic.py", groups=GROUPS, defaults=DEFAULTS)


def test_variant_words_pick_one_choice_per_group_and_flags():
    assert _parse("nat,sort,quick") == {"model": "nat", "task": "sort", "quick": True}
    assert _parse(None) == {"model": "at", "task": "copy", "quick": False}
    assert _parse(" reverse , ") == {"model": "at", "task": "reverse", "quick": False}


def test_unknown_variant_names_it_and_every_valid_word():
    with pytest.raises(ValueError) as err:
        _parse("at,shuffle")
    message = str(err.value)
    assert message == (
        "unknown variant 'shuffle' for synthetic.py; valid: at, nat, copy, reverse, sort, quick"
    )


def test_two_choices_of_one_group_conflict():
    with pytest.raises(ValueError, match="'nat' conflicts with 'at'.*pick one of: at, nat"):
        _parse("at,nat")


def test_a_group_without_default_must_be_chosen():
    with pytest.raises(ValueError, match="needs a variant for model; valid: at, nat"):
        parse_variant("", config_name="g2p.py", groups={"model": ("at", "nat")}, defaults={})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("schedule", "linear", "unknown schedule 'linear'; valid: rsqrt, cosine, constant"),
        ("decode_method", "sample", "unknown decode_method 'sample'; valid: greedy, beam"),
        ("glancing_start", 1.5, "glancing_start must be in [0, 1], got 1.5"),
        ("batch_size", 0, "batch_size must be in [1, 2147483647], got 0"),
        ("label_smoothing", 1.0, "label_smoothing must be in [0, 1), got 1.0"),
    ],
)
def test_bad_training_values_are_named(key, value, expected):
    config = base_config()
    config[key] = value
    with pytest.raises(ValueError) as err:
        check_training(config)
    assert str(err.value) == expected


def test_defaults_are_valid():
    check_training(base_config())


def test_errors_raised_inside_a_config_file_are_reduced_to_their_message():
    from attnlab.train.cli import one_line

    wrapped = (
        "flag --config=g2p.py:zz: Error whilst parsing config file:\n\nTraceback (most recent "
        'call last):\n  File "g2p.py", line 4, in get_config\n    raise ValueError(...)\n'
        "ValueError: unknown variant 'zz' for g2p.py; valid: at, nat, quick\n"
    )
    assert one_line(wrapped) == "unknown variant 'zz' for g2p.py; valid: at, nat, quick"
    assert one_line("Unknown command line flag 'bogus'") == "Unknown command line flag 'bogus'"


@pytest.mark.parametrize(
    "recipe, expected",
    # synthetic lengths up to 16: targets of 17 tokens with their EOS; the default max_len is 64
    [("eos_canvas", 17), ("vanilla", 64), ("ctc", 64)],
)
def test_the_eos_canvas_is_as_wide_as_the_data_allows_and_no_wider(data_dir, recipe, expected):
    config = quick_config(f"synthetic.py:nat,copy,{recipe},quick", data_dir)
    assert config.model.max_len == 64
    resolved, info = resolve_config(config)
    assert (info.max_len, info.max_target_len) == (16, 17)
    assert resolved.model.max_len == expected
