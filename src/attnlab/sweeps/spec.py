"""What a sweep is, and how it becomes runs with checked configs.

A ``Sweep`` asks one question ("what happens if I change X?") through ``Grid``s: a task config
(a file of ``experiments/configs`` and its variant), the settings it fixes and the axes it
varies. ``expand`` makes one ``Run`` per setting and seed, with the ``--config.key=value``
overrides that ``experiments/train.py`` gets; it builds every run's config and makes the
trainer's checks (``check_config``), so a bad value fails before any run starts.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from attnlab.choices import check_choice
from attnlab.train.config import check_config, load_config_file, load_module

# Keys counted in steps; a fixed-examples sweep scales them by reference_batch / batch_size.
STEP_KEYS = (
    "num_train_steps",
    "warmup_steps",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A block of runs on one task config: fixed settings times the axes. ``budget`` (model
    size, training length) is the full form's; the quick form uses the task's quick variant."""

    label: str
    config: str  # "<file in experiments/configs>:<variant>", e.g. "g2p.py:at"
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    axes: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    zipped: bool = False
    budget: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def settings(self) -> list[dict[str, Any]]:
        """Every combination of axis values: the product, or the axes zipped."""
        keys, values = list(self.axes), [list(v) for v in self.axes.values()]
        if self.zipped and len({len(v) for v in values}) > 1:
            raise ValueError(f"grid {self.label!r}: zipped axes need equal lengths")
        combos = zip(*values, strict=True) if self.zipped else itertools.product(*values)
        return [dict(zip(keys, combo, strict=True)) for combo in combos]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A named study: the question, its grids, and how results are judged and drawn."""

    name: str
    question: str  # the question and the published expectation; opens report.md
    grids: tuple[Grid, ...]
    metric: str = "eval_wer"  # the setting with the best mean is marked in report.md
    lower_is_better: bool = True
    report_metrics: tuple[str, ...] = ("eval_wer", "eval_per", "eval_accuracy", "eval_loss")
    plot_metrics: tuple[str, ...] = ("eval_wer",)
    plot_x: str | None = None  # a numeric axis drawn as the x axis (else: one bar per setting)
    # Fixed number of examples seen: every run's STEP_KEYS are scaled by
    # base batch_size / run batch_size, where the base is the task config with its budget.
    fixed_examples: bool = False

    def setting_keys(self) -> list[str]:
        """The keys that tell runs apart: each grid's fixed settings and axes."""
        return list(dict.fromkeys(k for g in self.grids for k in [*g.fixed, *g.axes]))


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: a setting of one grid, with one seed."""

    sweep: str
    group: str
    task: str  # the config argument after the file's path, e.g. "g2p.py:at,quick"
    name: str
    seed: int
    settings: Mapping[str, Any]
    overrides: Mapping[str, Any]  # every --config.key=value, seed included

    @property
    def relpath(self) -> str:
        """``<run-name>/seed<k>``, relative to the sweep's workdir."""
        return f"{self.name}/seed{self.seed}"

    def identity(self) -> list[str]:
        """What makes two runs the same run: the task config and every override."""
        return [self.task, *(f"{k}={format_value(v)}" for k, v in self.overrides.items())]

    def config_args(self, configs_dir: str | Path) -> list[str]:
        """The ``--config`` flags of ``experiments/train.py`` for this run."""
        args = [f"--config={Path(configs_dir) / self.task}"]
        args += [f"--config.{k}={format_value(v)}" for k, v in self.overrides.items()]
        return args


def format_value(value: Any) -> str:
    """A value as ml_collections ``config_flags`` parses it back (tuples via literal_eval)."""
    return repr(tuple(value)) if isinstance(value, tuple | list) else str(value)


def parse_value(text: str) -> Any:
    """A command-line value: an int, float, bool or tuple literal, else the string itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, int | float | bool | tuple) else text


def set_key(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """``config.<key> = value`` for an existing dotted key; unknown keys list the valid ones."""
    *path, last = key.split(".")
    node = config
    for depth, part in enumerate([*path, last]):
        keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        if part not in keys:
            scope = f"{'.'.join(path[:depth])} keys" if depth else "keys"
            raise ValueError(f"unknown config key {key!r}; valid {scope}: {', '.join(keys)}")
        if depth < len(path):
            node = node[part]
    try:
        node[last] = value
    except TypeError as err:
        old = type(node[last]).__name__
        raise ValueError(f"config key {key!r} takes a {old}, got {value!r}") from err


def build_config(
    base: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of ``base`` with ``overrides`` applied, key by key."""
    config = ml_collections.ConfigDict(base.to_dict())
    for key, value in overrides.items():
        set_key(config, key, value)
    return config


def expand(
    sweep: Sweep,
    *,
    configs_dir: str | Path,
    seeds: int = 3,
    quick: bool = False,
    axes: Mapping[str, Sequence[Any]] | None = None,
    sets: Mapping[str, Any] | None = None,
    groups: Sequence[str] | None = None,
) -> tuple[list[Run], dict[str, ml_collections.ConfigDict]]:
    """The sweep's runs (seed-major: every setting of seed 0 first) and each run's config.

    ``axes`` replaces the values of some of the sweep's axes, ``sets`` overrides a config key
    in every run, and ``groups`` keeps only the named grids. Every config is built and
    checked; the first problem raises a one-line ValueError.
    """
    axes, sets = dict(axes or {}), dict(sets or {})
    axis_keys = list(dict.fromkeys(k for g in sweep.grids for k in g.axes))
    labels = [g.label for g in sweep.grids]
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if unknown := [g for g in groups or () if g not in labels]:
        raise ValueError(
            f"unknown group {unknown[0]!r} of sweep {sweep.name}; valid: {', '.join(labels)}"
        )
    if unknown := [k for k in axes if k not in axis_keys]:
        valid = ", ".join(axis_keys) or "(none)"
        raise ValueError(f"sweep {sweep.name} has no axis {unknown[0]!r}; valid: {valid}")
    if clash := [k for k in sets if k in axis_keys or k == "seed"]:
        raise ValueError(
            f"--set {clash[0]} is an axis of sweep {sweep.name} (or the seed); use --axis"
        )
    grids = [g for g in sweep.grids if not groups or g.label in groups]
    bases: dict[str, ml_collections.ConfigDict] = {}
    runs: list[Run] = []
    configs: dict[str, ml_collections.ConfigDict] = {}
    for seed, grid in itertools.product(range(seeds), grids):
        # The quick form: the task's quick variant, g2p.py:at -> g2p.py:at,quick, without budget.
        task = (
            grid.config + ("," if ":" in grid.config else ":") + "quick" if quick else grid.config
        )
        if task not in bases:
            bases[task] = load_config_file(Path(configs_dir) / task)
        base = bases[task]
        grid_axes = {k: axes.get(k, v) for k, v in grid.axes.items()}
        for setting in dataclasses.replace(grid, axes=grid_axes).settings():
            overrides = {**({} if quick else grid.budget), **grid.fixed}
            reference = int(overrides.get("batch_size", base.batch_size))
            overrides.update({**setting, **sets})
            if sweep.fixed_examples:  # step counts meant for batch `reference`, scaled
                batch = int(overrides.get("batch_size", base.batch_size))
                for key in STEP_KEYS:
                    steps = int(overrides.get(key, base[key]))
                    overrides[key] = max(1, round(steps * reference / batch))
            overrides["seed"] = seed
            parts = [grid.label] if len(sweep.grids) > 1 or not setting else []
            parts += [f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in setting.items()]
            name = ",".join(parts).replace("/", "_").replace(" ", "")
            settings = {**grid.fixed, **setting}
            run = Run(sweep.name, grid.label, task, name, seed, settings, overrides)
            if run.relpath in configs:
                raise ValueError(f"sweep {sweep.name}: two runs are named {run.relpath}")
            try:
                configs[run.relpath] = build_config(base, overrides)
                check_config(configs[run.relpath])
            except ValueError as err:
                raise ValueError(f"run {run.relpath}: {err}") from err
            runs.append(run)
    return runs, configs


def load_sweeps(path: str | Path) -> dict[str, Sweep]:
    """The named sweeps of a definitions file (its ``SWEEPS``, name -> ``Sweep``), such as
    experiments/configs/ablations.py."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweeps file {path}: no such file")
    try:
        module = load_module(path)
    except Exception as err:  # the file is the user's: its error, in one line
        raise ValueError(f"sweeps file {path}: {type(err).__name__}: {err}") from None
    sweeps = getattr(module, "SWEEPS", None)
    if not isinstance(sweeps, dict) or not all(isinstance(s, Sweep) for s in sweeps.values()):
        raise ValueError(f"sweeps file {path}: defines no SWEEPS dict of Sweep")
    return sweeps


def get_sweep(sweeps: Mapping[str, Sweep], name: str) -> Sweep:
    """The sweep called ``name``; an unknown name raises a ValueError listing the valid ones."""
    return sweeps[check_choice("sweep", name, list(sweeps))]
