"""`train_and_evaluate(config, workdir)`: a config in, a trained model out.

This is what the CLI calls. It builds the dataset (`jaxnets.data`, the only
module that imports TensorFlow, lazily), the model (a `jaxnets.models` name
or 'package.module:factory') and hands both to `fit`.
"""

from __future__ import annotations

import os

import jax.numpy as jnp

from jaxnets.train.config import ConfigError, check_dataset
from jaxnets.train.loop import Result, fit, resolve_config
from jaxnets.train.model_api import Model, build_model

VOCAB_FILE = "vocab.json"


def load_dataset(config, workdir: str):
    """`jaxnets.data.get_dataset` for `config`; a text run reuses its saved vocabulary."""
    from jaxnets import data
    check_dataset(config.dataset)
    kwargs = {
        "batch_size": config.batch_size, "eval_batch_size": config.eval_batch_size or None,
        "seed": config.seed, "data_dir": config.data_dir or None,
        "image_shape": tuple(config.image_shape) if config.image_shape else None,
        "max_length": config.max_length or None, "vocab_size": config.vocab_size or None,
        "augment": config.augment,
    }
    vocab_path = os.path.join(workdir, VOCAB_FILE)
    if os.path.exists(vocab_path):  # a resumed run must see the same token ids
        kwargs["vocab"] = data.Vocabulary.load(vocab_path)
    try:
        dataset = data.get_dataset(config.dataset, **kwargs)
    except ValueError as e:  # an option that does not fit this dataset
        raise ConfigError(f"dataset {config.dataset!r}: {e}") from None
    if getattr(dataset, "vocab", None) is not None and not os.path.exists(vocab_path):
        os.makedirs(workdir, exist_ok=True)
        dataset.vocab.save(vocab_path)
    return dataset


def model_from_config(config, dataset) -> Model:
    """The model named by `config.model`, sized for `dataset`."""
    vocab = getattr(dataset, "vocab", None)
    return build_model(
        config.model, model_kwargs=dict(config.model_kwargs),
        num_classes=getattr(dataset, "num_classes", None),
        input_shape=getattr(dataset, "input_shape", None),
        vocab_size=len(vocab) if vocab is not None else None,
        dtype=None if config.dtype == "float32" else jnp.dtype(config.dtype))


def train_and_evaluate(config, workdir: str) -> Result:
    """Trains and evaluates the model and dataset `config` names; logs to `workdir`.

    Args:
      config: a ConfigDict (see jaxnets.train.config.default_config).
      workdir: checkpoints, logs, plots; an existing checkpoint is resumed.
    """
    config = resolve_config(config)
    workdir = os.path.abspath(workdir)
    dataset = load_dataset(config, workdir)
    model = model_from_config(config, dataset)
    return fit(model, dataset, config, workdir)
