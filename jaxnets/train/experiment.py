"""`train_and_evaluate(config, workdir)`: a config in, a trained model out.

This is what the CLI calls. It builds the dataset (`jaxnets.data`, the only
module that imports TensorFlow, lazily), the model (a `jaxnets.models` name
or 'package.module:factory') and hands both to `fit`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnets import distributed
from jaxnets.train import config as config_lib
from jaxnets.train.config import ConfigError, check_dataset
from jaxnets.train.loop import Result, fit
from jaxnets.train.model_api import Model, build_model, load_factory
from jaxnets.train.rundir import CLIP, MODEL, SOURCE_VOCAB, VOCAB, RunDir


def load_dataset(config, run: RunDir | None = None, resuming: bool = False):
    """`jaxnets.data.get_dataset` for `config`; a resumed text run reuses the vocabulary
    saved in `run` (the checkpoint's token ids). Reads only: `stage_run_files` hands the
    files a new run saves to its RunDir."""
    from jaxnets import data
    from jaxnets.data.catalog import spec_for
    check_dataset(config.dataset)
    kwargs = {
        "batch_size": config.batch_size, "eval_batch_size": config.eval_batch_size or None,
        "seed": config.seed, "data_dir": config.data_dir or None,
        "image_shape": tuple(config.image_shape) if config.image_shape else None,
        "max_length": config.max_length or None, "vocab_size": config.vocab_size or None,
        "augment": config.augment,
        # each process reads its own shard of every split (jaxnets/data/contract.py)
        "process_index": jax.process_index(), "process_count": jax.process_count(),
    }
    try:
        saved = run.read_vocab(VOCAB) if (run and resuming) else None
        if saved is not None and spec_for(config.dataset).kind == "text":
            kwargs["vocab"] = saved  # the checkpoint's token ids
        return data.get_dataset(config.dataset, **kwargs)
    except ValueError as e:  # an option that does not fit this dataset, a damaged vocabulary
        raise ConfigError(f"dataset {config.dataset!r}: {e}") from None


def stage_run_files(run: RunDir, config, dataset) -> None:
    """model.json and the vocabularies, for `fit` to write once every check has passed."""
    run.stage(MODEL, {"model": config.model, "model_kwargs": config.model_kwargs.to_dict(),
                      "dtype": config.dtype, "sizes": model_sizes(dataset)})
    for name, vocab in ((VOCAB, getattr(dataset, "vocab", None)),
                        (SOURCE_VOCAB, getattr(dataset, "source_vocab", None))):
        if vocab is not None:
            run.stage(name, vocab)


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


def generation_measures(model: Model, dataset):
    """The sequence modes' own measures of a final state, or None for other models.

    Translation and captioning: exact-match accuracy of greedy decoding on the
    eval set (summed over processes). Language model: bits per character (the eval
    loss in base 2) and a few sampled texts.
    """
    from jaxnets import inference
    module = getattr(model, "module", None)
    if getattr(dataset, "kind", None) != "sequence" or not hasattr(module, "generate"):
        return None

    def measures(state, last_eval: dict | None) -> dict:
        if last_eval is None:
            return {}
        if "source" in dataset.eval or "image" in dataset.eval:
            return inference.exact_match(module, state.params, dataset.eval_batches(),
                                         combine=distributed.summed_over_processes)
        return {"bits_per_char": last_eval["loss"] / math.log(2),
                "samples": inference.sample_text(module, state.params, dataset.vocab)}
    return measures


def frame_measures(model: Model, dataset, run: RunDir):
    """Frame-level video classification's own measures, or None for other data: the
    accuracy on the memory frames (summed over processes), and clip.png, one test clip
    with each frame's predicted and true class."""
    from jaxnets.inference import frames
    module = getattr(model, "module", None)
    if module is None or "memory" not in (getattr(dataset, "eval", None) or {}):
        return None

    def measures(state, last_eval: dict | None) -> dict:
        if last_eval is None:
            return {}
        title = f"a test clip after {int(state.step)} steps: predicted (true) class per frame"
        first = next(iter(dataset.eval_batches()))
        run.write_plot(CLIP, lambda path: frames.draw_eval_clip(
            path, module, state.params, first, title))
        return frames.memory_accuracy(module, state.params, dataset.eval_batches(),
                                      combine=distributed.summed_over_processes)
    return measures


def train_and_evaluate(config, workdir: str) -> Result:
    """Trains and evaluates the model and dataset `config` names; logs to `workdir`.

    Builds the data and the model, then calls `fit` once. The model's factory is looked
    up first (a mistyped --model must not wait for a download), the workdir is claimed and
    checked before the data is read (a resumed text run reuses its vocabulary), and
    nothing is written there until every check has passed.

    Args:
      config: a ConfigDict (see jaxnets.train.config.default_config).
      workdir: checkpoints, logs, plots; an existing checkpoint is resumed.
    """
    from jaxnets import runtime_options
    runtime_options.tune_host()  # as fit does; here before the data can start JAX
    config = config_lib.resolve(config)
    runtime_options.split_host(config.host_devices)
    load_factory(config.model)  # an unknown or unimportable model fails before the data loads
    run = RunDir(workdir)
    with run.claimed():
        resuming = run.resume_step(config, jax.process_count()) is not None
        dataset = load_dataset(config, run, resuming)
        model = model_from_config(config, dataset)
        stage_run_files(run, config, dataset)
        measures = generation_measures(model, dataset) or frame_measures(model, dataset, run)
        return fit(model, dataset, config, run, measures=measures)
