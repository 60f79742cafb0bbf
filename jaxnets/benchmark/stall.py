"""Input stall of every preset with its real pipeline, as the training loop feeds it.

For each preset: its dataset (`jaxnets.train.experiment.load_dataset`: tf.data for the
image and text datasets, numpy for the sequence tasks), its model and optimiser, its
batch size, in the loop's own Trainer (jaxnets/train/trainer.py) on one device; batches go
through the loop's own placement (`Strategy.prefetch` of
`config.parallel` and `config.steps_per_call`: a host thread places them ahead, stacked k
at a time when the preset runs k steps per call; one CPU device takes numpy as is) into the
loop's compiled, state-donating step program, with at most one call in flight (the loop
reads each call's NaN flags one call later; after `runtime_options.tune_host` a CPU runs
each call before returning, so none is). Stall = time inside `next()` / wall time,
measured after the first (compiling) call.

Each row has three windows (see `preset_stall`): the first epoch while the RAM cache
fills, the steady state as the loop feeds it, and the steady state fed host batches.

Datasets that are not prepared on this machine, and the tf.data ones where TensorFlow
is not installed (the GPU machine), are reported as skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time

from jaxnets.train.meter import StallMeter
from jaxnets.train.inputs import EPOCH_END


@dataclasses.dataclass(frozen=True)
class StallRow:
    preset: str
    dataset: str
    batch_size: int
    steps: int                    # training steps per window
    examples_per_sec: float       # steady state, as the loop feeds it
    stall: float | None           # steady state (epoch 1, RAM cache full), as the loop feeds it
    first_epoch: float | None = None   # epoch 0, while the RAM cache fills
    host_only: float | None = None     # steady state, batches straight from the host
    note: str = ""
    steps_per_call: int = 1


def preset_stall(name: str, *, steps: int, data_dir: str = "",
                 window_seconds: float = 20.0) -> StallRow:
    """The stall row of preset `name` (skipped rows carry the reason in `note`).

    Three windows of at most `steps` steps (fewer for slow models: about
    `window_seconds` each), each fed by one stream over the epochs as the loop's
    (`jaxnets.train.inputs.epoch_stream`): epoch 0 as the loop feeds it, while the RAM
    cache fills; after the rest of epoch 0, the steady state as the loop feeds it, from
    epoch 1 on and across epoch ends; then a new stream from epoch 2 read in the
    training thread (host batches: no placement thread; its pipeline built before the
    window).
    """
    import jax  # pylint: disable=g-import-not-at-top

    from jaxnets.data import catalog  # pylint: disable=g-import-not-at-top
    from jaxnets import configs  # pylint: disable=g-import-not-at-top
    from jaxnets.train import experiment  # pylint: disable=g-import-not-at-top
    from jaxnets.train.config import resolve  # pylint: disable=g-import-not-at-top
    from jaxnets.train.inputs import as_inputs, epoch_stream  # pylint: disable=g-import-not-at-top
    from jaxnets.train.placement import stack_batches  # pylint: disable=g-import-not-at-top
    from jaxnets.train.trainer import Trainer  # pylint: disable=g-import-not-at-top

    config = configs.get(name)
    if data_dir:
        config.data_dir = data_dir
    kind = catalog.spec_for(config.dataset).kind
    if kind != "sequence" and importlib.util.find_spec("tensorflow") is None:
        return StallRow(name, config.dataset, config.batch_size, 0, 0.0, None,
                        note="skipped: its tf.data pipeline needs TensorFlow")
    try:
        dataset = experiment.load_dataset(config)
    except Exception as e:  # noqa: BLE001 - not prepared / offline: report, don't fail
        return StallRow(name, config.dataset, config.batch_size, 0, 0.0, None,
                        note=f"skipped: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    model = experiment.model_from_config(config, dataset)
    # the loop's Trainer on one device: its placement, its stream, its step programs
    config = resolve({**config.to_dict(), "num_devices": 1, "num_steps": _ENDLESS})
    trainer = Trainer(model, as_inputs(dataset), config)
    k = trainer.strategy.steps_per_call
    step = lambda item: trainer.train_on(item)[0]  # noqa: E731  (examples)
    wait = lambda: jax.block_until_ready(trainer.state)  # noqa: E731
    # The loop's feeding: one stream over the epochs, read ahead across their ends.
    stream = trainer.batches()
    step(next(stream))  # compiles
    wait()
    started = time.perf_counter()
    step(next(stream))
    wait()
    if dataset.steps_per_epoch < 4 * k:
        raise ValueError(f"{name}: fewer than 4 calls per epoch leave nothing to measure")
    calls = max(1, min(steps // k,
                       int(window_seconds / max(time.perf_counter() - started, 1e-6))))
    first_epoch, _ = _window(stream, step, wait, min(calls, dataset.steps_per_epoch // k - 2))
    for item in stream:  # the rest of epoch 0 (fills the RAM cache), trained untimed
        if item is EPOCH_END:
            break
        step(item)
    stall, rate = _window(stream, step, wait, calls)
    stream.close()
    host = epoch_stream(as_inputs(dataset), 2, 0, _ENDLESS)
    host = stack_batches(host, k) if k > 1 else host
    step(next(host))  # builds its pipeline, untimed (the loop builds its own before training)
    host_only, _ = _window(host, step, wait, calls)
    return StallRow(name, config.dataset, config.batch_size, calls * k, rate, stall,
                    first_epoch, host_only, steps_per_call=k)


_ENDLESS = 1 << 40  # steps: the stream runs as long as it is read


def _window(items, step, wait, calls: int) -> tuple[float, float]:
    """(stall, examples/s) over `calls` calls of the step programs fed from `items`."""
    meter = StallMeter(items)
    done = examples = 0
    for item in meter:
        if item is EPOCH_END:  # the loop evaluates here; its wait for the item counts
            continue
        done, examples = done + 1, examples + step(item)
        if done == calls:
            break
    waited = meter.wait_seconds
    wait()
    wall = max(meter.wall_seconds, 1e-9)
    return min(1.0, waited / wall), examples / wall


def all_presets(*, steps: int, data_dir: str = "") -> list[StallRow]:
    from jaxnets import configs  # pylint: disable=g-import-not-at-top
    rows = []
    for name in configs.PRESETS:
        started = time.perf_counter()
        row = preset_stall(name, steps=steps, data_dir=data_dir)
        rows.append(dataclasses.replace(
            row, note=row.note or f"{time.perf_counter() - started:.0f} s with data loading"))
    return rows
