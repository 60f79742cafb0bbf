"""Presets as config files: one `get_config()` module each, whose docstring's first line is
its `--model=list` line, followed by the command and where its result is recorded;
LECTURE_MODE and DATA name its place in the lecture and its data (`--model=list`, the
results table of `python -m jaxnets.experiments.record`).

    python -m jaxnets.experiments.run --config=jaxnets/configs/rnn_sentiment.py
    python -m jaxnets.experiments.run --model=rnn_sentiment      # the same, shorter

`custom.py` is the defaults around your own model (`--model=package.module:factory`).
`get(name, overrides)` is the same config for code (the benchmark, tests); `finish` is
the one step both take after the overrides: smoke_overrides beneath them, then one
validation. Nothing here imports JAX or TensorFlow.
"""

from __future__ import annotations

import os
import types

import ml_collections

from jaxnets.configs import (alexnet, custom, lenet_mnist, rnn_captions, rnn_charlm,
                             rnn_sentiment, rnn_translate, rnn_video)
from jaxnets.train.config import ConfigError, check_dataset, resolve, with_smoke

PRESETS = {
    "lenet_mnist": lenet_mnist,
    "alexnet": alexnet,
    "rnn_sentiment": rnn_sentiment,   # many-to-one
    "rnn_charlm": rnn_charlm,         # many-to-many
    "rnn_captions": rnn_captions,     # one-to-many
    "rnn_translate": rnn_translate,   # sequence-to-sequence
    "rnn_video": rnn_video,           # many-to-many, synced (frame level)
}
DEFAULT = "lenet_mnist"  # what `python -m jaxnets.experiments.run` trains without --model


def describe() -> list[str]:
    """Two lines per preset: its name with the first line of its docstring, and the mode
    of the lecture's RNN picture it is (one to one, one to many, many to one, many to
    many) with its data."""
    width = max(map(len, PRESETS))
    return [line for name, module in PRESETS.items() for line in (
        f"{name:<{width}}  {module.__doc__.strip().splitlines()[0]}",
        f"{'':<{width}}  lecture: {module.LECTURE_MODE}; data: {module.DATA}")]


def path(name: str) -> str:
    """The absolute path of preset `name`'s config file."""
    return PRESETS[name].__file__


def _source(model: str) -> tuple[types.ModuleType, tuple[str, ...]]:
    """The config module `--model=<model>` names and the arguments of its get_config()."""
    if model in PRESETS:
        return PRESETS[model], ()
    if ":" in model:
        return custom, (model,)
    raise ConfigError(f"unknown model {model!r}; choose a preset: {', '.join(PRESETS)} "
                      "(see --model=list), or package.module:factory for your own model")


def config_arg(model: str) -> str:
    """The `--config` value that `--model=<model>` stands for: a preset's file, or
    custom.py:<model> for a 'package.module:factory'."""
    module, args = _source(model)
    return ":".join([module.__file__, *args])


def finish(config, overridden=()) -> ml_collections.ConfigDict:
    """The config a run uses, validated once.

    Precedence: the file's values < its smoke_overrides (when smoke) < `overridden`, the
    dotted paths the caller set (their values are already in `config`).
    """
    explicit = {path_.split(".")[0] for path_ in overridden}
    config = resolve(with_smoke(config, explicit))
    check_dataset(config.dataset)  # before JAX or TensorFlow start
    return config


def get(name: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
    """Preset `name` (or 'package.module:factory') with `overrides`, as the CLI builds it.

    Args:
      name: a preset name or 'package.module:factory'.
      overrides: values by dotted path, e.g. {"num_steps": 300, "model_kwargs.cell": "lstm"};
        new keys are accepted under model_kwargs (a factory's own arguments).
    """
    module, args = _source(name)
    config = module.get_config(*args)
    try:
        config.update_from_flattened_dict(dict(overrides or {}))
    except (KeyError, TypeError) as e:  # a path through a plain value; a value of a wrong type
        raise ConfigError(f"overrides {overrides!r}: {e.args[0]}") from None
    return finish(config, overrides or ())


def default_workdir(config) -> str:
    """runs/<preset>; a smoke run gets its own, so it never meets the real run's checkpoints."""
    return os.path.join("runs", config.preset + ("_smoke" if config.smoke else ""))
