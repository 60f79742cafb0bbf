"""The training config: every field, its default and its meaning, in one place.

Presets (`jaxnets/configs/`) start from `default_config()` and change values;
the CLI overrides any field with `--config.<field>=<value>`.
The loop never mutates a config: values derived from the data (vocabulary
size, steps per epoch) are computed, not written back.
"""

from __future__ import annotations

import collections.abc
import json
import math
import weakref

import ml_collections

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")
DTYPES = ("float32", "bfloat16", "float16")
PARALLEL = ("auto", "pmap", "sharding")   # see jaxnets/train/placement.py

# Fields that change only logging or bookkeeping: a resumed run may differ in these.
COSMETIC_FIELDS = ("note", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints",
                   "eval_every_steps", "eval_max_batches", "data_dir", "progress")
# Fields that say where and in what calls the run computes; a run may resume on other
# devices or with another steps_per_call (a checkpoint holds one copy of the state, whatever
# the layout it was trained in; the maths is the same to float rounding).
PLACEMENT_FIELDS = ("parallel", "num_devices", "host_devices", "steps_per_call")


class ConfigError(ValueError):
    """A bad config or flag value; the message says which and what to use instead."""


def read_json(path: str, fix: str):
    """The JSON in `path` (a run's config.json, model.json, vocabulary); a damaged file
    is a ConfigError naming it and `fix`."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is damaged ({e}): {fix}") from None


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.preset = "custom"          # the preset this config came from (names the run)
    c.note = ""                  # a line printed when the run starts (e.g. "smoke run: ...")
    # Model: a jaxnets.models.MODELS name or "package.module:factory".
    c.model = "lenet"
    c.model_kwargs = ml_collections.ConfigDict()   # extra factory arguments
    c.dtype = "float32"          # computation dtype, passed to the model's factory (which
                                 # must take one; fit checks a prebuilt model's)
    # Data: a jaxnets.data name; shape options are passed to jaxnets.data.get_dataset.
    c.dataset = "mnist5k"
    c.data_dir = ""              # "" = the default TFDS/cache directory
    c.image_shape = ml_collections.config_dict.placeholder(tuple)  # None = native
    c.max_length = 0             # text: tokens per example (0 = the dataset's default)
    c.vocab_size = 0             # text: vocabulary size (0 = the dataset's default)
    c.augment = False            # images: the dataset's stateless random augmentation
    c.batch_size = 64
    c.eval_batch_size = 0        # 0 = batch_size
    # Length: num_steps > 0 wins over num_epochs.
    c.num_epochs = 10
    c.num_steps = 0
    # Optimiser (see jaxnets/train/optim.py for the maths).
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.momentum = 0.9             # sgd-with-momentum and the b1 of adam/adamw
    c.nesterov = False
    c.b2 = 0.999
    c.weight_decay = 0.0         # never applied to biases or norm scales (ndim < 2)
    c.grad_clip_norm = 0.0       # clip by global norm; 0 = off
    c.schedule = "constant"
    c.warmup_steps = 0           # warmup_cosine: linear warmup from 0
    c.step_boundaries = (0.5, 0.75)  # step: fractions of the run where lr *= step_factor
    c.step_factor = 0.1
    c.seed = 0
    # Devices (jaxnets/train/placement.py): batch_size is per process and is split evenly over
    # its devices; with several processes the global batch is batch_size x processes.
    c.parallel = "auto"          # auto | pmap | sharding (jax.jit with a Mesh and
                                 # NamedSharding); what auto picks: --parallel's help
    c.num_devices = 0            # devices per process; 0 = all local devices
    c.host_devices = 0           # on a CPU: split it into this many XLA devices (0 = one), so
                                 # the run trains data-parallel on its cores; set before JAX
                                 # starts (jaxnets/runtime_options.py: split_host)
    # Training steps per call of the compiled program (Keras' steps_per_execution): k > 1
    # runs k consecutive batches in one lax.scan, so the loop's per-step costs (dispatch,
    # waiting for the next batch, metric merging) are paid once per k steps; batches that
    # cannot fill a group (an epoch's end) run one at a time. Periodic work
    # runs after the call whose steps reach its multiple (choose *_every_steps as multiples
    # of k to keep them exact). Worth it for steps of ~1 ms. Under pmap and sharding alike.
    c.steps_per_call = 1
    # Periodic work (0 = never, except where noted).
    c.log_every_steps = 50
    c.eval_every_steps = 0       # 0 = evaluate at the end of every epoch
    c.checkpoint_every_steps = 500   # also always at the end and on Ctrl-C
    c.keep_checkpoints = 3
    c.eval_max_batches = 0       # 0 = the whole eval set (only smoke runs cut it)
    c.progress = True            # print the progress line
    # Smoke switch: --config.smoke=True applies `smoke_overrides` (tiny, for tests;
    # see with_smoke).
    c.smoke = False
    c.smoke_overrides = ml_collections.ConfigDict(
        {"num_steps": 8, "batch_size": 8, "eval_batch_size": 8, "log_every_steps": 4,
         "warmup_steps": 2,
         "eval_every_steps": 0, "checkpoint_every_steps": 4, "eval_max_batches": 2})
    return c


def _check_choice(config, field: str, choices) -> None:
    value = config[field]
    if value not in choices:
        raise ConfigError(f"unknown {field} {value!r}; choose one of: {', '.join(choices)}")


def _check_step_schedule(config) -> None:
    """step_boundaries: strictly increasing fractions of the run in (0, 1); step_factor > 0."""
    bounds = tuple(config.step_boundaries)
    numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    increasing = all(a < b for a, b in zip(bounds, bounds[1:]))
    if not (numbers and all(0 < b < 1 for b in bounds) and increasing):
        raise ConfigError(f"step_boundaries must be strictly increasing fractions of the run "
                          f"in (0, 1), e.g. '(0.5, 0.75)'; got {bounds!r}")
    if not 0 < config.step_factor < math.inf:
        raise ConfigError(f"step_factor must be a finite number > 0, got {config.step_factor}")


def validate(config) -> None:
    """Raises ConfigError naming the first bad field and the valid values."""
    _check_choice(config, "optimizer", OPTIMIZERS)
    _check_choice(config, "schedule", SCHEDULES)
    _check_choice(config, "dtype", DTYPES)
    _check_choice(config, "parallel", PARALLEL)
    if config.num_devices < 0:
        raise ConfigError(f"num_devices must be >= 0 (0 = all local devices), got "
                          f"{config.num_devices}")
    if config.host_devices < 0:
        raise ConfigError(f"host_devices must be >= 0 (0 = the CPU as one device), got "
                          f"{config.host_devices}")
    for field in ("batch_size", "steps_per_call"):
        if config[field] < 1:
            raise ConfigError(f"{field} must be >= 1, got {config[field]}")
    if config.num_steps <= 0 and config.num_epochs <= 0:
        raise ConfigError(f"set num_epochs ({config.num_epochs}) or num_steps "
                          f"({config.num_steps}) to a positive number")
    if not 0 < config.learning_rate < math.inf:  # NaN fails too
        raise ConfigError(f"learning_rate must be a finite number > 0, got "
                          f"{config.learning_rate}")
    if config.keep_checkpoints < 1:
        raise ConfigError(f"keep_checkpoints must be >= 1, got {config.keep_checkpoints}")
    for field in ("num_epochs", "num_steps", "weight_decay", "grad_clip_norm",
                  "warmup_steps", "eval_batch_size",
                  "eval_max_batches", "log_every_steps", "eval_every_steps",
                  "checkpoint_every_steps", "max_length", "vocab_size"):
        if config[field] < 0:  # 0 means off or "the default" for each of these
            raise ConfigError(f"{field} must be >= 0 (0 = off or the default), got "
                              f"{config[field]}")
    for field in ("momentum", "b2"):
        if not 0 <= config[field] < 1:
            raise ConfigError(f"{field} must be in [0, 1), got {config[field]}")
    _check_step_schedule(config)


_RESOLVED: dict[int, tuple] = {}  # id of a resolved config -> (weak reference, its JSON)


def _is_resolved(config) -> bool:
    ref, text = _RESOLVED.get(id(config), (None, None))
    return ref is not None and ref() is config and text == config.to_json()


def resolve(config) -> ml_collections.ConfigDict:
    """`default_config()` updated with `config` (None, a dict or a ConfigDict), validated.

    A config this function returned, unchanged since, is returned as it is: the CLI,
    `train_and_evaluate` and `fit` each accept any config, but it is validated once.
    """
    if isinstance(config, ml_collections.ConfigDict) and _is_resolved(config):
        return config
    resolved = default_config()
    given = as_dict(config)
    unknown = _unknown_fields(given, resolved)
    if unknown:
        raise ConfigError(
            f"unknown config field(s) {', '.join(unknown)}; valid fields: "
            f"{', '.join(sorted(resolved))}")
    try:
        resolved.update(given)
    except TypeError as e:  # e.g. a string where a number belongs
        raise ConfigError(f"config: {e}") from None
    validate(resolved)
    key = id(resolved)
    _RESOLVED[key] = (weakref.ref(resolved, lambda _: _RESOLVED.pop(key, None)),
                      resolved.to_json())
    return resolved


def as_dict(config) -> dict:
    """A config given as None, a dict (any mapping) or a ConfigDict, as a plain dict;
    anything else is a ConfigError naming its type."""
    if config is None:
        return {}
    if isinstance(config, ml_collections.ConfigDict):
        return config.to_dict()
    if isinstance(config, collections.abc.Mapping):
        return dict(config)
    raise ConfigError(f"a config must be a dict or an ml_collections.ConfigDict, got "
                      f"{type(config).__name__} {_short(config)}; e.g. "
                      "{'num_epochs': 2, 'batch_size': 32}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown_fields(given: dict, fields) -> list[str]:
    """The names in `given` that are not config fields; smoke_overrides' first (a smoke
    run has copied them to the top: name them where they were set)."""
    smoke = [f"smoke_overrides.{k}" for k in given.get("smoke_overrides") or {}
             if k not in fields]
    return sorted(smoke) or sorted(set(given) - set(fields))


def check_dataset(name: str) -> None:
    """ConfigError naming the known datasets unless jaxnets.data knows `name`.

    Reads only the data catalog: no TensorFlow, no network.
    """
    from jaxnets.data import catalog
    try:
        catalog.spec_for(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def with_smoke(config, explicit=()) -> ml_collections.ConfigDict:
    """A copy with `smoke_overrides` applied when `config.smoke` is set.

    Fields named in `explicit` (the user's own overrides) keep their values.
    Config builders call this once; the loop itself ignores `smoke`.
    """
    config = ml_collections.ConfigDict(as_dict(config))
    if config.get("smoke"):
        for key, value in config.smoke_overrides.items():
            if key not in explicit:
                config[key] = value
    return config


def diff(saved: dict, current: dict) -> list[str]:
    """'field: saved -> current' for every non-cosmetic field that changed."""
    skip = set(COSMETIC_FIELDS) | set(PLACEMENT_FIELDS) | {"smoke_overrides"}
    keys = sorted((set(saved) | set(current)) - skip)
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
            for k in keys if _norm(saved.get(k)) != _norm(current.get(k))]


def _norm(value):
    """Lists and tuples compare equal (JSON turns tuples into lists)."""
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value
