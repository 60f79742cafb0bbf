r"""Training examples/s on several devices: pmap against sharding against one device.

    python -m jaxnets.benchmark.scaling           # 4 fake CPU devices, ~2 minutes on 2 cores
    python -m jaxnets.benchmark.scaling --devices=2 --models=lenet --reps=3

Each model trains in the loop's own `Trainer` (jaxnets/train/trainer.py), fed as `fit`
feeds it: host batches stacked `steps_per_call` at a time and placed by the strategy's
host thread (`Strategy.prefetch`), the NaN check and metric merging of every call
included. Three contenders per model, all at the preset's steps_per_call and batch size:

  one device   parallel=sharding, num_devices=1 (what `auto` runs on one device)
  sharding     jax.jit with NamedSharding over all --devices
  pmap         jax.pmap over all --devices (k > 1: each device scans its k slices)

They run interleaved in one process (timing.py: each repetition times every contender
once, the order rotating) and the table gives the median over repetitions with the
spread. On a CPU, `--devices` fake devices (`jax_num_cpu_devices`) share the machine's
cores: the figures compare the strategies' overheads, not a speed-up.

The models (jaxnets/benchmark/workloads.py, at the preset's batch size): lenet_mnist's
LeNet-5 (32x32x1), rnn_sentiment's vanilla RNN (T=200 tokens, vocabulary 10,000), and
AlexNet on a 67x67x3 input with 10 classes (workloads' tiny AlexNet: at 227x227 one step
takes ~0.4 s here and the three contenders would not fit the run's few minutes).
"""

from __future__ import annotations

import threading
import time

from absl import flags

from jaxnets import cli
from jaxnets.benchmark import timing

MODELS = ("lenet", "rnn", "alexnet")

_DEVICES = flags.DEFINE_integer("devices", 4, "Fake CPU devices (on a GPU machine: the "
                                "first this many GPUs).", lower_bound=2)
_MODELS = flags.DEFINE_list("models", list(MODELS), "Which workloads.")
_REPS = flags.DEFINE_integer("reps", 5, "Timed repetitions per contender.", lower_bound=1)
_SECONDS = flags.DEFINE_float("seconds", 2.0, "About how long one repetition runs.")


def contenders(devices: int) -> dict[str, tuple[str, int]]:
    """name -> (parallel, num_devices)."""
    return {"one device": ("sharding", 1), "sharding": ("sharding", devices),
            "pmap": ("pmap", devices)}


def trainer_calls(workload, parallel: str, num_devices: int):
    """(Trainer, calls, items) where calls(n) runs n compiled calls as `fit` makes them and
    waits; `items.close()` stops the strategy's host thread.

    The data is one epoch of 2k copies of the workload's batch (k = the preset's
    steps_per_call), so every call is a full group of k steps.
    """
    import jax  # pylint: disable=g-import-not-at-top

    from jaxnets.train.config import resolve  # pylint: disable=g-import-not-at-top
    from jaxnets.train.inputs import EPOCH_END, as_inputs  # pylint: disable=g-import-not-at-top
    from jaxnets.train.model_api import as_model  # pylint: disable=g-import-not-at-top
    from jaxnets.train.trainer import Trainer  # pylint: disable=g-import-not-at-top

    k = workload.config.steps_per_call
    config = resolve({**workload.config.to_dict(), "parallel": parallel,
                      "num_devices": num_devices, "num_steps": 10**9, "seed": 0})
    trainer = Trainer(as_model(workload.module), as_inputs([workload.batch] * (2 * k)), config)
    items = trainer.batches()

    def calls(n: int) -> None:
        done = 0
        while done < n:
            item = next(items)
            if item is EPOCH_END:
                trainer.end_epoch()
                continue
            trainer.train_on(item)
            done += 1
        jax.block_until_ready(trainer.state)
    return trainer, calls, items


def measure(name: str, devices: int, reps: int, seconds: float) -> dict:
    """One model's row: examples/s of each contender (median, low, high)."""
    from jaxnets.benchmark import workloads  # pylint: disable=g-import-not-at-top
    from jaxnets.configs import PRESETS  # pylint: disable=g-import-not-at-top

    preset = {"lenet": "lenet_mnist", "rnn": "rnn_sentiment", "alexnet": "alexnet"}[name]
    batch = PRESETS[preset].get_config().batch_size
    workload = workloads.build(name, tiny=name == "alexnet", batch_size=batch)
    k = workload.config.steps_per_call
    runners, described, streams = {}, {}, []
    for label, (parallel, num_devices) in contenders(devices).items():
        trainer, runners[label], items = trainer_calls(workload, parallel, num_devices)
        described[label] = trainer.strategy.describe()
        streams.append(items)
    compile_s = {}
    try:
        for label, run in runners.items():  # the first call compiles
            started = time.perf_counter()
            run(1)
            compile_s[label] = time.perf_counter() - started
        calls = {label: timing.steps_for(run, seconds) for label, run in runners.items()}
        stats = timing.interleaved(runners, calls, reps=reps, warmup=0)
    finally:  # a host thread left inside device_put at exit would abort the process
        _stop(streams)
    per_call = workload.batch_size * k
    return {"model": name, "what": workload.what, "steps_per_call": k,
            "batch": workload.batch_size, "calls": calls, "strategies": described,
            "first_call_s": compile_s,
            "examples_per_s": {label: {"median": s.rate(per_call),
                                       "low": per_call / s.high, "high": per_call / s.low}
                               for label, s in stats.items()}}


def _stop(streams) -> None:
    """Stops the host threads placing batches and waits for them: one still inside a
    device_put when Python exits aborts the process."""
    for items in streams:
        items.close()
    for thread in threading.enumerate():
        if thread.name == "jaxnets-host-prefetch":
            thread.join(timeout=30)


def table(rows: list[dict], devices: int) -> str:
    """The Markdown table of `measure`'s rows."""
    labels = list(contenders(devices))
    lines = ["| model | k | batch | " + " | ".join(f"{label} ex/s" for label in labels)
             + " | pmap / sharding | pmap / one device |",
             "|---|---:|---:|" + "---:|" * (len(labels) + 2)]
    for row in rows:
        rate = row["examples_per_s"]
        cells = [f"{rate[label]['median']:,.0f} ({rate[label]['low']:,.0f}-"
                 f"{rate[label]['high']:,.0f})" for label in labels]
        lines.append(f"| {row['what']} | {row['steps_per_call']} | {row['batch']} | "
                     + " | ".join(cells)
                     + f" | {rate['pmap']['median'] / rate['sharding']['median']:.2f}x"
                     + f" | {rate['pmap']['median'] / rate['one device']['median']:.2f}x |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; use --flag=value")
    unknown = sorted(set(_MODELS.value) - set(MODELS))
    if unknown:
        raise ValueError(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    runtime_options.tune_host()  # as the training command does, before JAX starts
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
    if len(jax.local_devices()) < _DEVICES.value:
        raise ValueError(f"--devices={_DEVICES.value}, but JAX has "
                         f"{len(jax.local_devices())} {jax.default_backend()} devices")
    machine = timing.machine()
    print(f"machine: {machine['cpu']}, {machine['cpu_cores']} cores, jax "
          f"{machine['versions']['jax']}, {_DEVICES.value} {jax.default_backend()} devices; "
          f"load before {machine['load_average_start']}", flush=True)
    rows = []
    for name in _MODELS.value:
        rows.append(measure(name, _DEVICES.value, _REPS.value, _SECONDS.value))
        row = rows[-1]
        print(f"{name}: " + ", ".join(row["strategies"].values()) + "; calls per "
              f"repetition {row['calls']}; first call (compile) "
              + ", ".join(f"{label} {s:.1f} s" for label, s in row["first_call_s"].items()),
              flush=True)
    print(f"\nexamples/s, median over {_REPS.value} interleaved repetitions (min-max):\n")
    print(table(rows, _DEVICES.value))
    print(f"\nload after {timing.load_average()}")


if __name__ == "__main__":
    cli.run(main)
