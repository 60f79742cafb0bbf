"""`train_and_evaluate(config, workdir)`: a config in, a trained model out.

This is what the CLI calls. It builds the dataset (`jaxnets.data`, the only
module that imports TensorFlow, lazily), the model (a `jaxnets.models` name
or 'package.module:factory') and hands both to `fit`.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.train.checkpoint import saved_steps
from jaxnets.train import config as config_lib
from jaxnets.train.config import ConfigError, check_dataset
from jaxnets.train.loop import (Result, fit, make_workdir, only_run_in, refuse_another_config)
from jaxnets.train.model_api import Model, build_model

VOCAB_FILE = "vocab.json"
SOURCE_VOCAB_FILE = "source_vocab.json"


def load_dataset(config, workdir: str, resuming: bool = False):
    """`jaxnets.data.get_dataset` for `config`; a resumed text run reuses its saved
    vocabulary (the checkpoint's token ids), a new run builds and saves its own."""
    from jaxnets import data
    check_dataset(config.dataset)
    kwargs = {
        "batch_size": config.batch_size, "eval_batch_size": config.eval_batch_size or None,
        "seed": config.seed, "data_dir": config.data_dir or None,
        "image_shape": tuple(config.image_shape) if config.image_shape else None,
        "max_length": config.max_length or None, "vocab_size": config.vocab_size or None,
        "augment": config.augment,
        # each process reads its own shard of every split (jaxnets/parallel.py)
        "process_index": jax.process_index(), "process_count": jax.process_count(),
    }
    vocab_path = os.path.join(workdir, VOCAB_FILE)
    from jaxnets.data.catalog import spec_for
    keep_vocab = resuming and os.path.exists(vocab_path)  # the checkpoint's token ids
    try:
        if keep_vocab and spec_for(config.dataset).kind == "text":
            kwargs["vocab"] = data.Vocabulary.load(vocab_path)
        dataset = data.get_dataset(config.dataset, **kwargs)
    except ValueError as e:  # an option that does not fit this dataset, a damaged vocabulary
        raise ConfigError(f"dataset {config.dataset!r}: {e}") from None
    if jax.process_index() != 0:  # the workdir's files are written once, by process 0
        return dataset
    if getattr(dataset, "vocab", None) is not None and not keep_vocab:
        os.makedirs(workdir, exist_ok=True)
        dataset.vocab.save(vocab_path)
    if getattr(dataset, "source_vocab", None) is not None:  # translation: the input side
        dataset.source_vocab.save(os.path.join(workdir, SOURCE_VOCAB_FILE))
    return dataset


def model_sizes(dataset) -> dict:
    """What a model factory may take from the data: classes, input shape, vocabulary."""
    vocab = getattr(dataset, "vocab", None)
    source_vocab = getattr(dataset, "source_vocab", None)  # translation tasks
    shape = getattr(dataset, "input_shape", None)
    sizes = {"num_classes": getattr(dataset, "num_classes", None),
             "input_shape": list(shape) if shape is not None else None,
             "vocab_size": len(vocab) if vocab is not None else None}
    if source_vocab is not None:
        sizes.update(source_vocab_size=len(source_vocab), target_vocab_size=len(vocab))
    return sizes


def model_from_config(config, dataset) -> Model:
    """The model named by `config.model`, sized for `dataset`."""
    sizes = model_sizes(dataset)
    if sizes["input_shape"] is not None:
        sizes["input_shape"] = tuple(sizes["input_shape"])
    return build_model(
        config.model, model_kwargs=dict(config.model_kwargs), **sizes,
        dtype=None if config.dtype == "float32" else jnp.dtype(config.dtype))


def evaluate_generation(model: Model, result: Result, dataset) -> dict:
    """The sequence modes' own measures, added to the run's summary.

    Translation and captioning: exact-match accuracy of greedy decoding on the
    eval set. Language model: bits per character (the eval loss in base 2) and
    a few sampled texts.
    """
    from jaxnets import inference
    module, params = getattr(model, "module", None), result.state.params
    if not hasattr(module, "generate") or not result.eval:
        return {}
    if "source" in dataset.eval or "image" in dataset.eval:
        return inference.exact_match(module, params, dataset.eval_batches(),
                                     combine=_summed_over_processes)
    return {"bits_per_char": result.eval["loss"] / math.log(2),
            "samples": inference.sample_text(module, params, dataset.vocab)}


def _summed_over_processes(counts: np.ndarray) -> np.ndarray:
    """Counts summed over every process (each scored its own shard of the eval set)."""
    if jax.process_count() == 1:
        return counts
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(counts)).sum(axis=0)


def train_and_evaluate(config, workdir: str) -> Result:
    """Trains and evaluates the model and dataset `config` names; logs to `workdir`.

    Args:
      config: a ConfigDict (see jaxnets.train.config.default_config).
      workdir: checkpoints, logs, plots; an existing checkpoint is resumed.
    """
    from jaxnets import inference, runtime_options
    runtime_options.tune_host()  # as fit does; here before the data can start JAX
    config = config_lib.resolve(config)
    workdir = os.path.abspath(workdir)
    make_workdir(workdir)
    with only_run_in(workdir):  # before the vocabulary and model.json are written
        resuming = bool(saved_steps(os.path.join(workdir, "checkpoints")))
        refuse_another_config(workdir, config, resuming)  # before anything is written too
        dataset = load_dataset(config, workdir, resuming)
        model = model_from_config(config, dataset)
        if jax.process_index() == 0:
            inference.save_model_spec(workdir, config, model_sizes(dataset))
        result = fit(model, dataset, config, workdir)
        if getattr(dataset, "kind", None) == "sequence":
            extra = evaluate_generation(model, result, dataset)
            result.summary.update(extra)
            _report_generation(workdir, extra)
    return result


def _report_generation(workdir: str, extra: dict) -> None:
    """Prints the sequence measures and adds them to summary.json (process 0)."""
    if not extra or jax.process_index() != 0:
        return
    for key, value in extra.items():
        if key == "samples":
            print("samples:\n" + "\n".join(f"  {text!r}" for text in value))
        else:
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    path = os.path.join(workdir, "summary.json")
    if os.path.exists(path):
        with open(path) as f:
            summary = json.load(f)
        summary.update(extra)
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
