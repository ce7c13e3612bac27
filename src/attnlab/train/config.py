"""Training configuration: every training key with its default, variant parsing, and the one
entry point of config validation.

A run is described by one ``ml_collections.ConfigDict``: the training keys below, ``model.*``
(``attnlab.nn.config.model_config``) and ``data.*`` (``attnlab.data.config.data_config``).
Task files in ``experiments/configs/`` start from ``base_config()`` and pick a variant with
``parse_variant``, the way big_vision configs read ``file.py:variant=B/16,runlocal``.

``check_config`` fills in every default and makes every check that needs no data, each
section by its own layer, once, top down: the training keys (``check_training``, here), the
model (``attnlab.nn.config.check_model``) and a NAT's recipe options, asked through the
registry (``attnlab.nat.check_options``), then the data (``attnlab.data.config.check_data``).
The checks that need the data follow in ``attnlab.train.resolve.fit_to_data``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from attnlab.choices import check_choices
from attnlab.data.config import data_config
from attnlab.decode.at import DECODE_METHODS
from attnlab.nat import check_options
from attnlab.nn.config import check_model, model_config

SCHEDULES = ("rsqrt", "cosine", "constant")
SHARDINGS = ("replicate", "fsdp")
COMPUTE_DTYPES = ("float32", "bfloat16")
INT32_MAX = 2**31 - 1

# The keys that may differ when a workdir's run is resumed: how long it runs, how often it
# logs, evaluates and saves, how it decodes for evaluation, and where the data lives. Every
# other key describes the run itself; changing it means a new run in a new workdir.
RESUMABLE_KEYS = (
    "num_train_steps",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "max_to_keep",
    "keep_checkpoint_steps",
    "eval_split",
    "eval_batch_size",
    "eval_decode_examples",
    "decode_method",
    "beam_size",
    "length_penalty",
    "nat_strategy",
    "restart_if_unreadable",
    "sharding",
    "data.data_dir",
    "data.distill_dir",  # where a distilled split lives: a moved run directory resumes
)

CHOICES = {
    "schedule": SCHEDULES,
    "decode_method": DECODE_METHODS,
    "sharding": SHARDINGS,
    "compute_dtype": COMPUTE_DTYPES,
}


def base_config() -> ml_collections.ConfigDict:
    """Every training key with its default. ``model`` and ``data`` are filled by task files."""
    return ml_collections.ConfigDict(
        {
            "seed": 0,
            "batch_size": 64,  # global: split over every device of every host
            # How the train state lies on the devices (attnlab.train.sharding): "replicate"
            # (a full copy on each) or "fsdp" (each parameter and its optimizer state split
            # along the data axis). A run may resume under another mode or device count.
            "sharding": "replicate",
            # The dtype of activations and matmuls in the train and eval steps; parameters,
            # optimizer state and the loss stay float32. bfloat16 needs no loss scaling: it
            # has float32's exponent range, so gradients do not underflow as in float16.
            "compute_dtype": "float32",
            "num_train_steps": 1000,
            "log_every_steps": 50,
            "eval_every_steps": 500,
            "checkpoint_every_steps": 500,
            "max_to_keep": 3,
            # Steps whose checkpoints are kept besides the last `max_to_keep` (saved there even
            # off the `checkpoint_every_steps` grid), e.g. to decode a model again at that step.
            "keep_checkpoint_steps": (),
            # With every checkpoint of the workdir unreadable, the run refuses to start over
            # from step 0 unless this is True.
            "restart_if_unreadable": False,
            # AdamW with linear warmup, then rsqrt or cosine decay; global-norm clipping.
            "learning_rate": 1e-3,
            "warmup_steps": 100,
            "schedule": "rsqrt",
            "adam_b1": 0.9,
            "adam_b2": 0.98,
            "adam_eps": 1e-9,
            "weight_decay": 0.0,
            "grad_clip": 1.0,  # <= 0 turns clipping off
            "label_smoothing": 0.1,
            # NAT (the recipe is model.nat_recipe, attnlab.nat): weight of the
            # length-prediction loss (fairseq's length_loss_factor 0.1), and glancing training
            # (GLAT; vanilla, ctc, dag) with its ratio annealed linearly from glancing_start
            # at step 0 to glancing_end at glancing_anneal_fraction * num_train_steps, then
            # held there (attnlab.nat.glancing).
            "length_loss_weight": 0.1,
            "glancing": False,
            "glancing_start": 0.5,
            "glancing_end": 0.3,
            "glancing_anneal_fraction": 1.0,
            # Evaluation: teacher-forced loss/accuracy on the whole split, and decoding
            # metrics on the first `eval_decode_examples` examples (0 turns decoding off).
            "eval_split": "validation",
            "eval_batch_size": 128,
            "eval_decode_examples": 512,
            "decode_method": "greedy",  # AT: greedy | beam
            "beam_size": 4,
            "length_penalty": 0.6,  # GNMT length penalty for beam search
            # NAT decoding strategy (attnlab.nat.decoding); "" = the recipe's default.
            "nat_strategy": "",
            "model": ml_collections.ConfigDict(),
            "data": ml_collections.ConfigDict(),
        }
    )


def parse_variant(
    arg: str | None,
    *,
    config_name: str,
    groups: Mapping[str, Sequence[str]],
    defaults: Mapping[str, str],
    flags: Sequence[str] = ("quick",),
) -> dict[str, Any]:
    """Parse ``"at,quick"`` into ``{"model": "at", "quick": True}``.

    ``groups`` maps a group name to its exclusive choices (at most one per group; missing
    groups take ``defaults``); ``flags`` are words that switch something on. An unknown word
    raises a one-line ValueError naming it and every valid word.
    """
    chosen: dict[str, Any] = {name: defaults.get(name) for name in groups}
    chosen.update({flag: False for flag in flags})
    valid = [c for choices in groups.values() for c in choices] + list(flags)
    seen: set[str] = set()
    for word in (w.strip() for w in (arg or "").split(",")):
        if not word:
            continue
        if word in flags:
            chosen[word] = True
            continue
        group = next((g for g, choices in groups.items() if word in choices), None)
        if group is None:
            raise ValueError(
                f"unknown variant {word!r} for {config_name}; valid: {', '.join(valid)}"
            )
        if group in seen:
            raise ValueError(
                f"variant {word!r} conflicts with {chosen[group]!r} for {config_name}; "
                f"pick one of: {', '.join(groups[group])}"
            )
        seen.add(group)
        chosen[group] = word
    missing = [g for g, v in chosen.items() if v is None]
    if missing:
        choices = ", ".join(groups[missing[0]])
        raise ValueError(f"{config_name} needs a variant for {missing[0]}; valid: {choices}")
    return chosen


def load_config_file(spec: str | os.PathLike) -> ml_collections.ConfigDict:
    """``get_config(variant)`` of a task config named as on the command line: ``file.py[:variant]``.

    What ``--config=file.py:variant`` gives an entry point (ml_collections ``config_flags``),
    for the code that needs a task config without parsing flags: the sweep runner, the
    benchmarks, a config that builds on another. A missing file is a one-line ValueError that
    lists the config files beside it.
    """
    file, _, variant = str(spec).partition(":")
    path = Path(file)
    if not path.is_file():
        valid = sorted(p.name for p in path.parent.glob("*.py"))
        raise ValueError(f"config file {file!r} not found; valid: {', '.join(valid)}")
    return load_module(path).get_config(variant or None)


def load_module(path: str | os.PathLike) -> types.ModuleType:
    """The Python file at ``path`` run as a module of its own (a config or sweeps file that
    is no package's), named after the file; its errors propagate."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"_attnlab_file_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``config`` with every default filled in, after every check that needs no data
    (module doc): the first problem is a one-line ValueError. It starts and writes nothing."""
    checked = base_config()
    unknown = sorted(set(config.keys()) - set(checked.keys()))
    if unknown:
        valid = ", ".join(sorted(checked.keys()))
        raise ValueError(f"unknown config key {unknown[0]!r}; valid: {valid}")
    checked.update(ml_collections.ConfigDict(config.to_dict()))  # the caller's config stays
    config = checked
    check_training(config)
    config.model = model_config(**config.model.to_dict())
    check_model(config.model)
    if config.model.name == "nat":  # also writes the recipe's default model.upsample
        check_options(config.model, glancing=bool(config.glancing), strategy=config.nat_strategy)
    config.data = data_config(**config.data.to_dict())
    return config


def check_training(config: ml_collections.ConfigDict) -> None:
    """Check the training keys; a one-line ValueError naming the key and the valid values."""
    check_choices(config, CHOICES)
    positive = ("batch_size", "num_train_steps", "log_every_steps", "eval_every_steps")
    positive += ("checkpoint_every_steps", "max_to_keep", "eval_batch_size", "beam_size")
    for key in positive:
        if not 1 <= int(config[key]) <= INT32_MAX:
            raise ValueError(f"{key} must be in [1, {INT32_MAX}], got {config[key]}")
    for step in config.keep_checkpoint_steps:
        if not 1 <= int(step) <= INT32_MAX:
            raise ValueError(f"keep_checkpoint_steps must be steps in [1, {INT32_MAX}], got {step}")
    lr = float(config.learning_rate)
    if not (math.isfinite(lr) and lr > 0.0):
        raise ValueError(f"learning_rate must be finite and > 0, got {config.learning_rate}")
    if int(config.eval_decode_examples) < 0:
        raise ValueError(f"eval_decode_examples must be >= 0, got {config.eval_decode_examples}")
    if not 0 <= config.warmup_steps <= INT32_MAX:
        raise ValueError(f"warmup_steps must be in [0, {INT32_MAX}], got {config.warmup_steps}")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    for key in ("glancing_start", "glancing_end", "glancing_anneal_fraction"):
        if not 0.0 <= config[key] <= 1.0:
            raise ValueError(f"{key} must be in [0, 1], got {config[key]}")
    if config.schedule == "rsqrt" and config.warmup_steps < 1:
        raise ValueError("schedule 'rsqrt' needs warmup_steps >= 1 (lr * sqrt(warmup / step))")


def make_quick(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrink a task config so the whole pipeline runs end to end in seconds (``quick``).

    A tiny model, a small limited build of the dataset, a few dozen steps, and evaluation,
    checkpointing and logging often enough that every part of the loop runs.
    """
    config.model.update(
        d_model=32, num_heads=2, d_ff=64, num_encoder_layers=1, num_decoder_layers=1
    )
    config.data.max_source_examples = 2000
    config.update(
        batch_size=32,
        num_train_steps=40,
        log_every_steps=10,
        eval_every_steps=20,
        checkpoint_every_steps=20,
        warmup_steps=10,
        learning_rate=3e-3,
        eval_batch_size=64,
        eval_decode_examples=64,
    )
    return config
