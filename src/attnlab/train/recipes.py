"""Task configs pick a NAT recipe by name: what each recipe sets in a training config.

``use_nat_recipe(config, "ctc", glancing=True)`` turns a NAT training config into one that
trains ``model.nat_recipe = "ctc"`` with what that recipe needs: a length mode (``offset`` for
the recipes with a length head, so that "as long as the source" is the middle class, else
``none``), the canvas factor left at the recipe's default (``upsample = 0``), the recipe's
default decoding strategy (``nat_strategy = ""``) and glancing on or off. ``ctc`` also marks
the copies (``model.mark_copies``, see ``attnlab.nn.nat``): without the marks, a CTC canvas of
copied source embeddings could not keep two equal neighbouring tokens apart (measured on long
copy: BUILD_NOTES.md, "Copy marks"); ``--config.model.mark_copies=False`` is the ablation.
Everything else (``decoder_input``, sizes) stays as the task file set it.
"""

from __future__ import annotations

import ml_collections

from attnlab.nn.nat_recipes import RECIPES, check_glancing


def use_nat_recipe(
    config: ml_collections.ConfigDict, recipe: str, *, glancing: bool = False
) -> ml_collections.ConfigDict:
    """Set ``config`` (with ``model.name = "nat"``) to train ``recipe``; see the module doc."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown NAT recipe {recipe!r}; valid: {', '.join(RECIPES)}")
    check_glancing(recipe, glancing)
    has_head = RECIPES[recipe].length_modes != ("none",)
    config.model.update(nat_recipe=recipe, length_mode="offset" if has_head else "none", upsample=0)
    config.model.mark_copies = recipe == "ctc"
    config.update(nat_strategy="", glancing=glancing)
    return config
