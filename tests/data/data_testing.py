"""Helpers for the data tests."""


def tiny(data_dir: str, name: str, **overrides) -> dict:
    """A data config for a small build of ``name`` (a few hundred entries) in ``data_dir``."""
    defaults = {"cmudict_g2p": 400, "cmudict_syllables": 400, "cn_address": 400}
    cfg = {"name": name, "data_dir": data_dir, "max_source_examples": defaults.get(name, 300)}
    cfg.update(overrides)
    return cfg
