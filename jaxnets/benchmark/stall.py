"""Input stall of every preset with its real pipeline, as the training loop feeds it.

For each preset: its dataset (`jaxnets.train.experiment.load_dataset`: tf.data for the
image and text datasets, numpy for the sequence tasks), its model and optimiser, its
batch size; batches go through the loop's own placement (`Strategy.prefetch` of
`config.parallel`: a host thread places them ahead; one CPU device takes numpy as is)
into the jitted, state-donating `train_step`, with at most one step in flight (the loop reads each
step's NaN flag one step later). Stall = time inside `next()` / wall time, measured
after the first (compiling) step.

Each row has three windows (see `preset_stall`): the first epoch while the RAM cache
fills, the steady state as the loop feeds it, and the steady state fed host batches.

Datasets that are not prepared on this machine, and the tf.data ones where TensorFlow
is not installed (the GPU machine), are reported as skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
import time

from jaxnets.data.stall_meter import StallMeter


@dataclasses.dataclass(frozen=True)
class StallRow:
    preset: str
    dataset: str
    batch_size: int
    steps: int                    # per window
    examples_per_sec: float       # steady state, as the loop feeds it
    stall: float | None           # steady state (epoch 1, RAM cache full), as the loop feeds it
    first_epoch: float | None = None   # epoch 0, while the RAM cache fills
    host_only: float | None = None     # steady state, batches straight from the host
    note: str = ""


class InFlight:
    """`step(batch)` that keeps one step in flight, as the training loop does."""

    def __init__(self, compiled_step, state):
        self.step, self.state, self.previous = compiled_step, state, None

    def __call__(self, batch):
        import jax  # pylint: disable=g-import-not-at-top
        self.state, metrics, finite = self.step(self.state, batch)
        if self.previous is not None:
            jax.block_until_ready(self.previous)
        self.previous = finite

    def wait(self):
        import jax  # pylint: disable=g-import-not-at-top
        jax.block_until_ready(self.state)


def preset_stall(name: str, *, steps: int, data_dir: str = "",
                 window_seconds: float = 20.0) -> StallRow:
    """The stall row of preset `name` (skipped rows carry the reason in `note`).

    Three windows of at most `steps` steps (fewer for slow models: about
    `window_seconds` each): epoch 0 as the loop feeds it; epoch 1, the same, with the
    RAM cache full; epoch 2 with the host batches passed straight to the jitted step
    in the training thread (no placement thread, no device_put).
    """
    import jax  # pylint: disable=g-import-not-at-top

    from jaxnets.data import catalog  # pylint: disable=g-import-not-at-top
    from jaxnets.experiments import presets  # pylint: disable=g-import-not-at-top
    from jaxnets.parallel import make_strategy  # pylint: disable=g-import-not-at-top
    from jaxnets.train import experiment  # pylint: disable=g-import-not-at-top
    from jaxnets.train.optim import make_optimizer  # pylint: disable=g-import-not-at-top
    from jaxnets.train.state import create_state  # pylint: disable=g-import-not-at-top
    from jaxnets.train.steps import train_step  # pylint: disable=g-import-not-at-top

    config = presets.build_config(name)
    if data_dir:
        config.data_dir = data_dir
    kind = catalog.spec_for(config.dataset).kind
    if kind != "sequence" and importlib.util.find_spec("tensorflow") is None:
        return StallRow(name, config.dataset, config.batch_size, 0, 0.0, None,
                        note="skipped: its tf.data pipeline needs TensorFlow")
    try:
        with tempfile.TemporaryDirectory(prefix="jaxnets-stall-") as workdir:
            dataset = experiment.load_dataset(config, workdir)
    except Exception as e:  # noqa: BLE001 - not prepared / offline: report, don't fail
        return StallRow(name, config.dataset, config.batch_size, 0, 0.0, None,
                        note=f"skipped: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    model = experiment.model_from_config(config, dataset)
    tx, _ = make_optimizer(config, total_steps=10_000)
    strategy = make_strategy(config.parallel, 1)  # the loop's placement, on one device
    batches = strategy.prefetch(dataset.train_epoch(0))
    first = next(batches)
    state = create_state(model, tx, first, config.seed)
    step = InFlight(jax.jit(train_step, donate_argnums=0).lower(state, first).compile(),
                    state)
    started = time.perf_counter()
    step(first)
    step.wait()
    steps = max(1, min(steps, dataset.steps_per_epoch - 1,
                       int(window_seconds / max(time.perf_counter() - started, 1e-6))))
    first_epoch, _ = _window(batches, step, steps)
    for _ in batches:  # the rest of epoch 0: fills the RAM cache, untimed
        pass
    if dataset.steps_per_epoch < 2:
        raise ValueError(f"{name}: one batch per epoch leaves nothing to measure")
    stall, rate = _window(strategy.prefetch(dataset.train_epoch(1)), step, steps,
                          config.batch_size)
    host_only, _ = _window(iter(dataset.train_epoch(2)), step, steps)
    return StallRow(name, config.dataset, config.batch_size, steps, rate, stall,
                    first_epoch, host_only)


def _window(batches, step, steps: int, batch_size: int = 0) -> tuple[float, float]:
    """(stall, examples/s) over `steps` steps fed from `batches`."""
    meter = StallMeter(batches)
    done = 0
    for batch in meter:
        step(batch)
        done += 1
        if done == steps:
            break
    waited = meter.wait_seconds
    step.wait()
    wall = max(meter.wall_seconds, 1e-9)
    return min(1.0, waited / wall), done * batch_size / wall


def all_presets(*, steps: int, data_dir: str = "") -> list[StallRow]:
    from jaxnets.experiments import presets  # pylint: disable=g-import-not-at-top
    rows = []
    for name in presets.PRESETS:
        started = time.perf_counter()
        row = preset_stall(name, steps=steps, data_dir=data_dir)
        rows.append(dataclasses.replace(
            row, note=row.note or f"{time.perf_counter() - started:.0f} s with data loading"))
    return rows
