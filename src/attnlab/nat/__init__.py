"""attnlab.nat: the non-autoregressive recipes, one module each, and their registry.

A NAT (``attnlab.nat.model.NATSeq2Seq``) is trained and decoded by one named recipe,
``model.nat_recipe`` (docs/nat_recipes.md). Each recipe module holds its decoder input or
canvas, its extra heads, its loss, its decoding strategies with the default one, its option
defaults and what it accepts (``attnlab.nat.base.Recipe`` lists what a recipe answers):

- ``vanilla`` (Gu et al. 2018), ``cmlm`` (Ghazvininejad et al. 2019), ``eos_canvas``,
  ``ctc`` (Libovický & Helcl 2018; Saharia et al. 2020), ``dag`` (Huang et al. 2022).
- ``glancing``: glancing training (Qian et al. 2021), which ``vanilla``, ``ctc`` and ``dag`` use.
- ``decoding``: ``nat_decode``/``nat_decoder``, which ask the model's recipe.

``RECIPES`` maps each name to its recipe; a new recipe is one module and one entry here, or
``register(recipe)`` from outside (a test can define one). The checks below word the
cross-recipe messages: one line naming the problem and the valid choices.
"""

from __future__ import annotations

import ml_collections

from attnlab.choices import check_choice
from attnlab.nat import cmlm, ctc, dag, eos_canvas, vanilla
from attnlab.nat.base import Recipe, Strategy

RECIPES: dict[str, Recipe] = {
    r.name: r for r in (vanilla.RECIPE, cmlm.RECIPE, eos_canvas.RECIPE, ctc.RECIPE, dag.RECIPE)
}


def register(recipe: Recipe) -> Recipe:
    """Add ``recipe`` under its name (a name already taken is refused); returns it."""
    if not recipe.name or recipe.name in RECIPES:
        raise ValueError(f"a NAT recipe needs a new name; taken: {', '.join(RECIPES)}")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    """The recipe named ``name``; one ValueError line naming the valid ones otherwise."""
    return RECIPES[check_choice("model.nat_recipe", name, tuple(RECIPES))]


def check_model_options(cfg: ml_collections.ConfigDict) -> None:
    """One-line ValueError if ``length_mode`` or ``upsample`` does not fit ``nat_recipe``."""
    recipe = get_recipe(cfg.nat_recipe)
    if cfg.length_mode not in recipe.length_modes:
        raise ValueError(
            f"model.length_mode {cfg.length_mode!r} does not apply to nat_recipe "
            f"{recipe.name!r}; valid: {', '.join(recipe.length_modes)}"
        )
    if cfg.upsample < 0 or (cfg.upsample and not recipe.upsampled):
        upsampled = ", ".join(r.name for r in RECIPES.values() if r.upsampled)
        valid = "0 or more" if recipe.upsampled else f"0 (it applies to {upsampled})"
        raise ValueError(
            f"model.upsample {cfg.upsample} does not apply to nat_recipe {recipe.name!r}; "
            f"valid: {valid}"
        )


def check_glancing(recipe: Recipe, glancing: bool) -> None:
    """One-line ValueError if glancing training is asked of a recipe that has none."""
    if glancing and not recipe.glancing:
        valid = ", ".join(r.name for r in RECIPES.values() if r.glancing)
        raise ValueError(f"glancing does not apply to nat_recipe {recipe.name!r}; valid: {valid}")


def check_options(
    cfg: ml_collections.ConfigDict, *, glancing: bool, strategy: str
) -> ml_collections.ConfigDict:
    """Every check of a NAT's training config: the model options, glancing and the decoding
    ``strategy`` (empty: the recipe's default). Fills in ``cfg.upsample`` when it is 0, so that
    ``config.json`` records the factor used; returns ``cfg``."""
    check_model_options(cfg)
    recipe = get_recipe(cfg.nat_recipe)
    check_glancing(recipe, glancing)
    recipe.parse_strategy(recipe.strategy_or_default(strategy))
    if recipe.upsampled and cfg.upsample == 0:
        cfg.upsample = recipe.upsample_factor(cfg)
    return cfg


def parse_strategy(strategy: str) -> Strategy:
    """``strategy`` parsed by the first recipe that decodes it, whatever the model; one
    ValueError line naming every recipe's forms otherwise (K, T >= 1)."""
    for recipe in RECIPES.values():
        try:
            return recipe.parse_strategy(strategy)
        except ValueError:
            continue
    forms = dict.fromkeys(form for r in RECIPES.values() for form in r.strategies)
    raise ValueError(f"unknown NAT strategy {strategy!r}; valid: {', '.join(forms)} (K, T >= 1)")


__all__ = [
    "RECIPES",
    "Recipe",
    "Strategy",
    "check_glancing",
    "check_model_options",
    "check_options",
    "get_recipe",
    "parse_strategy",
    "register",
]
