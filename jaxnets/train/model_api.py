"""The one contract between a model and the training loop, and its adapters.

The loop sees every model as a `Model`:

    init(rng, batch) -> (params, model_state)
    apply(params, model_state, batch, *, train, rng) -> (outputs, new_model_state)

`batch` is the loop's dict (`image` or `tokens`/`lengths`, `label`, `mask`),
`model_state` holds non-trainable collections (e.g. batch norm statistics;
`{}` for most models) and `outputs` are logits `<float>[batch, classes]`.

You rarely write a `Model` yourself; `as_model` adapts:
  * any Flax linen module, called as `module(*inputs(batch), train=...)`;
    by default `inputs` is `(image,)` or `(tokens, lengths)`;
  * any pair of pure functions (the stax contract)
        init(rng, batch) -> params
        apply(params, batch, *, train, rng) -> outputs
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnets.train.config import ConfigError
from jaxnets.train.dropout_key import dropout_key


def default_inputs(batch) -> tuple:
    """The positional model inputs of a batch, by the keys it has:

      source, tokens   (source, source_lengths, tokens, lengths)   sequence-to-sequence
      image, tokens    (image, tokens, lengths)                     one-to-many
      image, lengths   (image, lengths)                             frames of clips
      image            (image,)                                     CNN classifier
      tokens           (tokens, lengths)                            many-to-one / many-to-many
    """
    if "source" in batch:
        return (batch["source"], batch["source_lengths"], batch["tokens"], batch["lengths"])
    if "image" in batch and "tokens" in batch:
        return (batch["image"], batch["tokens"], batch["lengths"])
    if "image" in batch:
        return (batch["image"], batch["lengths"]) if "lengths" in batch else (batch["image"],)
    if "tokens" in batch:
        return (batch["tokens"], batch["lengths"]) if "lengths" in batch else (batch["tokens"],)
    raise KeyError(
        f"a batch needs an 'image' or a 'tokens' key, got keys {sorted(batch)}; "
        "or pass inputs=... to FlaxModel to say which keys the module takes")


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Model:
    """Base class of the loop's model contract (see the module docstring)."""

    dtype: str | None = None  # the computation dtype it was built for, when known

    def init(self, rng, batch):
        raise NotImplementedError

    def apply(self, params, model_state, batch, *, train: bool, rng):
        raise NotImplementedError


class FlaxModel(Model):
    """A Flax linen module behind the `Model` contract.

    Dropout draws from the 'dropout' RNG; collections other than 'params'
    (e.g. 'batch_stats') become `model_state` and are updated when training.
    A module whose `__call__` has no `train` argument is called without one.
    """

    def __init__(self, module: nn.Module, inputs: Callable[[Any], tuple] = default_inputs):
        self.module = module
        self.inputs = inputs
        self._takes_train = _accepts(type(module).__call__, "train")
        if hasattr(module, "dtype"):  # Flax's convention: None computes in float32
            self.dtype = jnp.dtype(module.dtype or jnp.float32).name

    def _kwargs(self, train: bool) -> dict:
        return {"train": train} if self._takes_train else {}

    def init(self, rng, batch):
        params_rng, dropout_rng = jax.random.split(rng)
        variables = self.module.init({"params": params_rng, "dropout": dropout_rng},
                                     *self.inputs(batch), **self._kwargs(False))
        variables = dict(variables)
        params = variables.pop("params", {})
        return params, variables

    def apply(self, params, model_state, batch, *, train: bool, rng):
        variables = {"params": params, **model_state}
        mutable = list(model_state) if (train and model_state) else False
        rngs = {"dropout": dropout_key(rng)} if rng is not None else None
        out = self.module.apply(variables, *self.inputs(batch), rngs=rngs,
                                mutable=mutable, **self._kwargs(train))
        if mutable:
            outputs, updates = out
            return outputs, {**model_state, **updates}
        return out, model_state

    def __repr__(self):
        return f"FlaxModel({type(self.module).__name__})"


class FunctionalModel(Model):
    """A pair of pure functions (no model state) behind the `Model` contract."""

    def __init__(self, init_fn: Callable, apply_fn: Callable):
        self.init_fn, self.apply_fn = init_fn, apply_fn

    def init(self, rng, batch):
        return self.init_fn(rng, batch), {}

    def apply(self, params, model_state, batch, *, train: bool, rng):
        return self.apply_fn(params, batch, train=train, rng=rng), model_state

    def __repr__(self):
        return f"FunctionalModel({getattr(self.apply_fn, '__name__', self.apply_fn)})"


def as_model(obj) -> Model:
    """Adapts a Flax module or an `(init, apply)` pair to the `Model` contract."""
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, nn.Module):
        return FlaxModel(obj)
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(map(callable, obj)):
        return FunctionalModel(*obj)
    raise TypeError(
        f"cannot train {type(obj).__name__!r}: pass a flax.linen.Module, or a pair "
        "(init, apply) with init(rng, batch) -> params and "
        "apply(params, batch, *, train, rng) -> logits")


def load_factory(spec: str) -> Callable:
    """A model factory: a `jaxnets.models.MODELS` name or 'package.module:factory'."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise ConfigError(f"custom model {spec!r}: give it as package.module:factory")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ConfigError(f"custom model {spec!r}: cannot import module "
                              f"{module_name!r} ({e}); is it on PYTHONPATH?") from None
        if not callable(getattr(module, attr, None)):
            raise ConfigError(f"custom model {spec!r}: module {module_name!r} has no "
                              f"callable {attr!r}")
        return getattr(module, attr)
    from jaxnets.models import MODELS
    if spec not in MODELS:
        raise ConfigError(f"unknown model {spec!r}; choose one of: {', '.join(sorted(MODELS))}, "
                          "or 'package.module:factory' for your own")
    return MODELS[spec]


def build_model(spec: str, *, model_kwargs: dict, **dataset_kwargs) -> Model:
    """Calls the factory named by `spec` and adapts what it returns.

    `dataset_kwargs` (num_classes, input_shape, vocab_size, dtype) are passed
    only when the factory's signature takes them and they are not None;
    `model_kwargs` (from the config) are always passed and win.
    """
    factory = load_factory(spec)
    dtype = dataset_kwargs.get("dtype")
    if dtype is not None and not _accepts(factory, "dtype") and "dtype" not in model_kwargs:
        raise ConfigError(f"dtype={jnp.dtype(dtype).name}, but model {spec!r} takes no "
                          "dtype argument: give its factory one, or leave dtype at float32")
    kwargs = {k: v for k, v in dataset_kwargs.items()
              if v is not None and _accepts(factory, k)}
    kwargs.update(model_kwargs)
    try:
        model = as_model(factory(**kwargs))
    except (TypeError, ValueError) as e:  # bad arguments, or shapes the model cannot take
        raise ConfigError(f"model {spec!r}: {e}") from None
    if dtype is not None:
        model.dtype = jnp.dtype(dtype).name
    return model
