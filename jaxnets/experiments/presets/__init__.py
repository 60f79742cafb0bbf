"""Presets: named configs, one module each, with the command and result in its docstring.

`build_config` turns what the CLI was given (a preset or 'package.module:factory',
the common flags, and `--config.x=...` overrides) into one validated config.
Nothing here imports JAX or TensorFlow.
"""

from __future__ import annotations

import os

import ml_collections

from jaxnets.experiments.presets import (alexnet, lenet_mnist, rnn_captions, rnn_charlm,
                                         rnn_sentiment, rnn_translate)
from jaxnets.train.config import (ConfigError, check_dataset, default_config, validate,
                                  with_smoke)

PRESETS = {
    "lenet_mnist": lenet_mnist,
    "alexnet": alexnet,
    "rnn_sentiment": rnn_sentiment,   # many-to-one
    "rnn_charlm": rnn_charlm,         # many-to-many
    "rnn_captions": rnn_captions,     # one-to-many
    "rnn_translate": rnn_translate,   # sequence-to-sequence
}

# CLI flag -> config field.
FLAG_FIELDS = {
    "dataset": "dataset", "epochs": "num_epochs", "steps": "num_steps",
    "batch_size": "batch_size", "learning_rate": "learning_rate",
    "optimizer": "optimizer", "seed": "seed",
}

# Overrides may add new keys under these fields (a factory's own arguments).
OPEN_FIELDS = ("model_kwargs", "smoke_overrides")


def describe() -> list[str]:
    """One line per preset: its name and the first line of its docstring."""
    width = max(map(len, PRESETS))
    return [f"{name:<{width}}  {module.__doc__.strip().splitlines()[0]}"
            for name, module in PRESETS.items()]


def base_config(model: str) -> ml_collections.ConfigDict:
    """The preset named `model`, or defaults around a 'package.module:factory'."""
    if model in PRESETS:
        return PRESETS[model].get_config()
    if ":" in model:
        config = default_config()
        config.model = model
        config.preset = model.rpartition(":")[2]
        return config
    raise ConfigError(f"unknown model {model!r}; choose a preset: {', '.join(PRESETS)} "
                      "(see --model=list), or package.module:factory for your own model")


def _apply_override(config, path: str, value) -> None:
    """Sets config.<path>; only the OPEN_FIELDS may gain new keys (their last level)."""
    keys, node = path.split("."), config
    for depth, key in enumerate(keys):
        last, where = depth == len(keys) - 1, ".".join(keys[:depth + 1])
        if key not in node and not (last and depth > 0 and keys[0] in OPEN_FIELDS):
            raise ConfigError(f"unknown config field {where!r} in --config.{path}; valid "
                              f"fields there: {', '.join(sorted(node))}")
        if last:
            try:
                node[key] = value
            except TypeError as e:
                raise ConfigError(f"--config.{path}={value!r}: {e}") from None
            return
        node = node[key]
        if not isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(f"--config.{path}: {where} is a single value ({node!r}); set "
                              f"it with --config.{where}=...")


def build_config(model: str, flag_values: dict | None = None,
                 overrides: dict | None = None) -> ml_collections.ConfigDict:
    """The config for a CLI invocation.

    Args:
      model: a preset name or 'package.module:factory'.
      flag_values: common flags by flag name (FLAG_FIELDS); None = not given.
      overrides: `--config.<path>` values by path, e.g. {"model_kwargs.cell": "lstm"}.

    Precedence: preset < smoke_overrides (when smoke) < flags < --config overrides.
    """
    config = base_config(model)
    explicit = set()
    for flag, value in (flag_values or {}).items():
        if value is not None:
            config[FLAG_FIELDS[flag]] = value
            explicit.add(FLAG_FIELDS[flag])
    if "num_epochs" in explicit and "num_steps" not in explicit:
        config.num_steps = 0  # --epochs asks for epochs, even if the preset counts steps
    for path, value in (overrides or {}).items():
        _apply_override(config, path, value)
        explicit.add(path.split(".")[0])
    config = with_smoke(config, explicit)
    validate(config)
    check_dataset(config.dataset)
    return config


def default_workdir(config) -> str:
    """runs/<preset>; a smoke run gets its own, so it never meets the real run's checkpoints."""
    return os.path.join("runs", config.preset + ("_smoke" if config.smoke else ""))
