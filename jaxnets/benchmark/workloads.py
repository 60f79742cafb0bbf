"""The benchmark's workloads: each preset's model and optimiser at the issue's sizes.

    lenet    LeNet-5 (lenet_mnist's model and optimiser), 32x32x1, batch 128
    alexnet  the lecture's AlexNet (1000 classes, alexnet's optimiser), 227x227x3, batch 16
    rnn      rnn_sentiment's vanilla RNN classifier (H=128, embeddings 64, its dropout and
             optimiser), 10,000-word vocabulary, T=200 real tokens, batch 64

The batches are the CPU's sizes; `batch_size=` overrides one (a GPU needs far larger
batches to be measured at all: `--batch_sizes=alexnet=1024,...`).

Training is the real `jaxnets.train` step (`create_state` + `train_step`, jitted once
with the state donated, NaN check and metrics included); inference is the model's
forward pass. Data is one in-memory batch already on the device: these rows measure
compute; the input pipeline has its own section. `tiny=True` shrinks every size so the
whole benchmark runs in seconds (tests).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from jaxnets.benchmark import flops as flops_lib

NAMES = ("lenet", "alexnet", "rnn")
REFERENCES = ("lenet_xla", "alexnet_xla")  # the same CNNs on XLA's own conv and pool ops


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    preset: str              # the preset whose model settings and optimiser it uses
    what: str                # one line for the table
    module: Any              # the Flax module
    batch: dict              # numpy arrays, the loop's batch keys
    config: Any              # the preset's config (optimiser fields)
    flops: dict              # per example: {"forward", "train"}
    torch_kind: str          # how torch_side builds the same model
    torch_sizes: dict

    @property
    def batch_size(self) -> int:
        return len(self.batch["label"])


def build(name: str, *, tiny: bool = False, dtype=None, batch_size: int | None = None
          ) -> Workload:
    """The workload `name` (one of NAMES or REFERENCES); `batch_size` replaces its
    default batch (None: the issue's size, or the tiny one)."""
    if name not in NAMES + REFERENCES:
        raise ValueError(f"unknown benchmark model {name!r}; choose from "
                         f"{', '.join(NAMES + REFERENCES)}")
    if batch_size is not None:
        _check_batch_size(name, batch_size)
    if name in REFERENCES:
        return _reference(build(base_name(name), tiny=tiny, dtype=dtype, batch_size=batch_size))
    return {"lenet": _lenet, "alexnet": _alexnet, "rnn": _rnn}[name](tiny, dtype, batch_size)


def base_name(name: str) -> str:
    """The workload a reference is a variant of (alexnet_xla -> alexnet)."""
    return name.removesuffix("_xla")


def parse_batch_sizes(items) -> dict[str, int]:
    """["alexnet=1024", "lenet=4096"] -> {"alexnet": 1024, "lenet": 4096}; a reference
    (alexnet_xla) takes its base workload's size. ValueError on anything else."""
    sizes = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"--batch_sizes item {item!r} is not NAME=SIZE "
                             f"(e.g. alexnet=1024)")
        if name not in NAMES:
            raise ValueError(f"--batch_sizes: unknown model {name!r}; choose from "
                             f"{', '.join(NAMES)} (references use their base model's size)")
        try:
            sizes[name] = int(value)
        except ValueError:
            raise ValueError(f"--batch_sizes: batch size of {name} must be a positive "
                             f"integer, got {value!r}") from None
        _check_batch_size(name, sizes[name])
    return sizes


def _check_batch_size(name: str, size) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"--batch_sizes: batch size of {name} must be a positive integer, "
                         f"got {size!r}")


def _reference(workload: Workload) -> Workload:
    """`workload` with every CONV and POOL on XLA's own ops (`impl="xla"`): what the
    models computed with before jaxnets/models/cnn.py chose faster methods."""
    module = workload.module
    layers = tuple(dataclasses.replace(layer, impl="xla") if hasattr(layer, "impl") else layer
                   for layer in module.layers)
    return dataclasses.replace(workload, name=f"{workload.name}_xla",
                               what=f"{workload.what}, XLA's conv and pool",
                               module=module.clone(layers=layers))


def _preset(name: str):
    from jaxnets.configs import PRESETS  # pylint: disable=g-import-not-at-top
    return PRESETS[name].get_config()


def _dtype_kwarg(dtype) -> dict:
    return {} if dtype is None else {"dtype": dtype}  # float32 models take no dtype


def _images(batch: int, shape, classes: int) -> dict:
    rng = np.random.default_rng(0)
    return {"image": rng.standard_normal((batch, *shape), np.float32),
            "label": rng.integers(0, classes, batch).astype(np.int32),
            "mask": np.ones(batch, np.float32)}


def _lenet(tiny, dtype, batch) -> Workload:
    from jaxnets.models import LeNet  # pylint: disable=g-import-not-at-top
    batch = batch or (8 if tiny else 128)
    module = LeNet(num_classes=10, **_dtype_kwarg(dtype))
    return Workload("lenet", "lenet_mnist", f"LeNet-5 32x32x1, batch {batch}", module,
                    _images(batch, module.input_shape, 10), _preset("lenet_mnist"),
                    flops_lib.cnn_flops(module), "lenet", {"classes": 10})


def _alexnet(tiny, dtype, batch) -> Workload:
    from jaxnets.models import AlexNet  # pylint: disable=g-import-not-at-top
    default, shape, classes = (2, (67, 67, 3), 10) if tiny else (16, (227, 227, 3), 1000)
    batch = batch or default
    module = AlexNet(num_classes=classes, input_shape=shape, **_dtype_kwarg(dtype))
    return Workload("alexnet", "alexnet", f"AlexNet {shape[0]}x{shape[1]}x3, {classes} "
                    f"classes, batch {batch}", module, _images(batch, shape, classes),
                    _preset("alexnet"), flops_lib.cnn_flops(module), "alexnet",
                    {"classes": classes, "shape": shape})


def _rnn(tiny, dtype, batch) -> Workload:
    from jaxnets.models.rnn_modes import RNNClassifier  # pylint: disable=g-import-not-at-top
    config = _preset("rnn_sentiment")
    kwargs = dict(config.model_kwargs)
    default, steps, vocab = (4, 8, 100) if tiny else (64, 200, 10_000)
    batch = batch or default
    module = RNNClassifier(vocab_size=vocab, num_classes=2, **kwargs, **_dtype_kwarg(dtype))
    rng = np.random.default_rng(0)
    data = {"tokens": rng.integers(1, vocab, (batch, steps)).astype(np.int32),
            "lengths": np.full(batch, steps, np.int32),
            "label": rng.integers(0, 2, batch).astype(np.int32),
            "mask": np.ones(batch, np.float32)}
    flops = flops_lib.rnn_classifier_flops(
        steps=steps, embed_dim=kwargs["embed_dim"], hidden_size=kwargs["hidden_size"],
        num_classes=2, cell=kwargs["cell"])
    return Workload("rnn", "rnn_sentiment", f"vanilla RNN H={kwargs['hidden_size']}, "
                    f"T={steps}, vocab {vocab:,}, batch {batch}", module, data, config, flops,
                    "rnn", {"vocab": vocab, **kwargs})


@dataclasses.dataclass
class JaxRun:
    """A compiled train step and forward pass, with what starting them cost."""

    train: Callable[[int], None]     # run n training steps as the loop does, and wait
    train_single: Callable[[int], None]  # run n training steps one per call, and wait
    steps_per_call: int              # how the loop calls `train`: the preset's setting
    infer: Callable[[int], None]     # run n forward passes and wait
    compile_seconds: float           # lowering + compiling the loop's first program
    first_step_seconds: float        # from nothing (model built) to the first call done
    loss: Callable[[], float]        # the last call's mean training loss
    state: Callable[[], Any]         # the current TrainState


def jax_run(workload: Workload, steps_per_call: int | None = None,
            num_devices: int = 1) -> JaxRun:
    """The workload's model in the loop's own Trainer (jaxnets/train/trainer.py) on one
    device (or `num_devices`), its programs compiled (timed), and runners that call it as
    `fit` does.

    `steps_per_call` (default: the preset's, as `python -m jaxnets.experiments.run` trains
    it): k > 1 runs k steps per call on k stacked copies of the batch (`train_steps`).
    `num_devices` > 1: data-parallel over that many devices, as `parallel=auto` trains
    there (pmap); on a CPU, split by `runtime_options.split_host` before JAX starts.
    """
    import jax  # pylint: disable=g-import-not-at-top

    from jaxnets.train.config import resolve  # pylint: disable=g-import-not-at-top
    from jaxnets.train.inputs import as_inputs  # pylint: disable=g-import-not-at-top
    from jaxnets.train.model_api import as_model  # pylint: disable=g-import-not-at-top
    from jaxnets.train.placement import Stacked  # pylint: disable=g-import-not-at-top
    from jaxnets.train.trainer import Trainer  # pylint: disable=g-import-not-at-top

    k = steps_per_call or workload.config.steps_per_call
    started = time.perf_counter()
    model = as_model(workload.module)
    config = resolve({**workload.config.to_dict(), "steps_per_call": k, "num_steps": 10_000,
                      "seed": 0, "num_devices": num_devices,
                      "parallel": "sharding" if num_devices == 1 else "auto"})
    trainer = Trainer(model, as_inputs([workload.batch]), config)  # no workdir: saves nothing
    place = (trainer.strategy.put_batch if num_devices > 1
             else lambda b, stacked=False: jax.device_put(b))
    batch = place(workload.batch)
    stacked = {key: np.stack([v] * k) for key, v in workload.batch.items()}
    item = Stacked(place(stacked, stacked=True)) if k > 1 else batch
    compile_seconds = trainer.compile_for(item)
    trainer.train_on(item)
    jax.block_until_ready(trainer.state)
    first_step = time.perf_counter() - started
    if k > 1:
        trainer.compile_for(batch)

    def train(n):  # as the loop groups them: n // k calls of k steps, the rest one by one
        for _ in range(n // k):
            trainer.train_on(item)
        train_single(n % k)

    def train_single(n):
        for _ in range(n):
            trainer.train_on(batch)
        jax.block_until_ready(trainer.state)

    # Compiled here, not on the first call: steps_for's one timed call would otherwise
    # be the compile and pick a single step per repetition (launch-bound on a GPU).
    one_copy = (lambda: trainer.state) if num_devices == 1 else trainer.unreplicated_state
    one_batch = jax.device_put(workload.batch)  # inference runs on one device
    forward = jax.jit(lambda params, model_state, b: model.apply(
        params, model_state, b, train=False, rng=None)[0]).lower(
            one_copy().params, one_copy().model_state, one_batch).compile()

    def infer(n):
        out = None
        for _ in range(n):
            out = forward(one_copy().params, one_copy().model_state, one_batch)
        jax.block_until_ready(out)

    def loss():  # the mean training loss since the last call of `loss`
        return float(trainer.take_train_metrics()["loss"])

    return JaxRun(train, train_single, k, infer, compile_seconds, first_step, loss, one_copy)
