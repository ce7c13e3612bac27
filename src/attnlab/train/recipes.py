"""Task configs pick a NAT recipe by name: what each recipe sets in a training config.

``use_nat_recipe(config, "ctc", glancing=True)`` turns a NAT training config into one that
trains ``model.nat_recipe = "ctc"`` with what that recipe needs: a length mode (``offset`` for
the recipes with a length head, so that "as long as the source" is the middle class, else
``none``), the canvas factor left at the recipe's default (``upsample = 0``), the recipe's
default decoding strategy (``nat_strategy = ""``), glancing on or off, and the recipe's
default of ``model.mark_copies`` (``ctc`` marks the copies: without the marks, a CTC canvas
of copied source embeddings could not keep two equal neighbouring tokens apart, measured on
long copy in docs/nat_recipes.md; ``--config.model.mark_copies=False`` is the ablation).
Everything else (``decoder_input``, sizes) stays as the task file set it.
"""

from __future__ import annotations

import ml_collections

from attnlab.nat import check_glancing, get_recipe


def use_nat_recipe(
    config: ml_collections.ConfigDict, recipe: str, *, glancing: bool = False
) -> ml_collections.ConfigDict:
    """Set ``config`` (with ``model.name = "nat"``) to train ``recipe``; see the module doc."""
    chosen = get_recipe(recipe)
    check_glancing(chosen, glancing)
    length_mode = "offset" if chosen.has_length_head else "none"
    config.model.update(nat_recipe=recipe, length_mode=length_mode, upsample=0)
    config.model.mark_copies = chosen.marks_copies
    config.update(nat_strategy="", glancing=glancing)
    return config
