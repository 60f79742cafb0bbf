"""The whole benchmark: options in, a results dict out (report.py turns it into tables).

Sections, each optional:
  gemm    GEMM GFLOP/s per backend, f32 and bf16 (and PyTorch's on the CPU)
  models  per workload: train and inference examples/s, FLOPs per example, achieved
          FLOP/s and fraction of the backend's f32 GEMM peak, compile time, first-step
          latency; PyTorch eager side by side, interleaved in the same process; for the
          RNN also Keras 3 on the JAX backend (keras_side.py), interleaved too
  lecture the lecture's CPU-vs-GPU table with this machine's GEMM GFLOP/s and AlexNet
          training images/s (this run's, or measured here) and the recorded GPU runs
          beside its rows (lecture.py)
  host    JAX training with and without `runtime_options.tune_host`, each in fresh
          processes, alternating (host.py)
  lesson  the input-pipeline lesson, disk -> RAM -> prefetch -> device prefetch
          (input_lesson.py, storage.py)
  stall   input stall of every preset with its real pipeline (stall.py)
  startup seconds from `python` to each preset's first training step (startup.py)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from jaxnets.benchmark import (gemm, host, input_lesson, keras_side, lecture, stall, startup,
                               timing, torch_side, workloads)

SECTIONS = ("gemm", "models", "lecture", "host", "lesson", "stall", "startup")


# The recorded GPU runs, in this checkout (absent from an installed wheel: no rows then).
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPU_RECORDS = os.path.join(_CHECKOUT, "experiments", "benchmarks", "gpu")


@dataclasses.dataclass(frozen=True)
class Options:
    sections: tuple[str, ...] = SECTIONS
    models: tuple[str, ...] = workloads.NAMES
    reps: int = 5
    seconds: float = 1.0          # target length of one timed repetition
    dtype: str = "float32"
    torch: str = "auto"           # "auto" (if installed), "yes", "no"
    keras: str = "auto"           # the RNN's Keras-on-JAX arm: "auto" (if installed), "yes", "no"
    threads: int = 0              # 0 = the cores this process may use
    stall_steps: int = 500
    lesson_steps: int = 300
    data_dir: str = ""
    tiny: bool = False            # tests: every size shrunk, one repetition
    tune_host: bool = True        # jaxnets.runtime_options.tune_host() (off: "before" runs)
    batch_sizes: dict = dataclasses.field(default_factory=dict)  # workload -> batch override
    gpu_records: str | None = GPU_RECORDS  # the lecture table's recorded GPU runs (None: none)


def run(options: Options, log=print, results: dict | None = None) -> dict:
    """Runs the chosen sections; returns {"machine", "options", section: rows}.

    `results`, when given, is filled in place as rows finish: a caller stopped part-way
    (a time limit) still has what was measured."""
    import jax  # pylint: disable=g-import-not-at-top

    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top

    if options.torch != "no":
        torch_side.prepare()  # before anything imports torch
    tuning = runtime_options.tune_host() if options.tune_host else "host not tuned (--notune_host)"
    threads = options.threads or timing.machine()["cpu_cores"]
    with_torch = _want_torch(options.torch) and jax.default_backend() == "cpu"
    _check_keras(options.keras)
    reps = 1 if options.tiny else options.reps
    results = {} if results is None else results
    results.update({"machine": timing.machine(), "options": dataclasses.asdict(options),
                    "host": tuning, "threads": threads, "torch": with_torch, "reps": reps,
                    "failures": []})
    if "startup" in options.sections:  # first: while this process is still idle and small
        log("start to first step of every preset (fresh processes) ...")
        results["startup"] = startup.all_presets()
    if "gemm" in options.sections:
        log("gemm ...")
        backends = sorted({d.platform for d in jax.devices()} | {"cpu"})
        results["gemm"] = gemm.measure(backends, tiny=options.tiny, reps=reps,
                                       threads=threads, with_torch=with_torch)
    if "models" in options.sections:
        _each(options.models, "models", results.setdefault("models", []),
              results["failures"], log,
              lambda name: _model_row(name, options, reps, threads, with_torch, log))
    if "lecture" in options.sections:
        log("the lecture's CPU vs GPU table ...")
        tables = []  # one, or none when it failed (recorded; the other sections still run)
        _each(["table"], "lecture", tables, results["failures"], log,
              lambda _: _lecture(options, results, reps, log))
        results.update({"lecture": tables[0]} if tables else {})
    if "host" in options.sections:
        log("host tuning on/off (fresh processes) ...")
        _each(options.models, "host", results.setdefault("host_ab", []), results["failures"],
              log, lambda name: _host_ab(name, options, reps))
    if "lesson" in options.sections:
        log("input pipeline lesson ...")
        results["lesson"] = _lesson(options)
    if "stall" in options.sections:
        log("input stall of every preset ...")
        results["stall"] = stall.all_presets(steps=4 if options.tiny else options.stall_steps,
                                             data_dir=options.data_dir)
    results["machine"]["load_average_end"] = timing.load_average()
    return results


def _each(names, section, rows, failures, log, row) -> None:
    """Appends `row(name)` for every name to `rows`; one that fails (e.g. out of device
    memory at a large batch) is logged and recorded in `failures`, and the others still
    run: a one-shot run on a borrowed GPU keeps what it measured."""
    for name in names:
        try:
            rows.append(row(name))
        except Exception as e:  # pylint: disable=broad-except
            error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
            log(f"  {name} failed: {error}")
            failures.append({"section": section, "name": name, "error": error[:300]})


def _build(name, options):
    """The workload with the options' dtype and batch override (a reference takes its
    base model's batch)."""
    return workloads.build(name, tiny=options.tiny, dtype=_dtype(options.dtype),
                           batch_size=options.batch_sizes.get(workloads.base_name(name)))


def _want_torch(choice: str) -> bool:
    if choice == "no":
        return False
    if choice == "yes" and not torch_side.available():
        raise ValueError("--torch=yes but PyTorch is not installed: pip install torch==2.13.0 "
                         "(the 'bench' extra), or pass --torch=auto")
    return torch_side.available()


def _check_keras(choice: str) -> None:
    if choice not in ("auto", "yes", "no"):
        raise ValueError(f"keras={choice!r}: choose auto, yes or no")
    if choice == "yes" and not keras_side.available():
        raise ValueError("--keras=yes but Keras is not installed: pip install keras "
                         "(the 'bench' extra), or pass --keras=auto")


def _keras_arm(workload, options, k) -> tuple:
    """(runner or None, note): the Keras arm of `workload`, or why it does not run."""
    if options.keras == "no":
        return None, "Keras arm off (--keras=no)"
    reason = keras_side.skip_reason(workload)
    if reason:
        return None, reason
    return keras_side.keras_run(workload, steps_per_execution=k), None


def _dtype(name: str):
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    return None if name == "float32" else jnp.dtype(name)


def _model_row(name, options, reps, threads, with_torch, log) -> dict:
    workload = _build(name, options)
    log(f"{workload.what} ...")
    jax_run = workloads.jax_run(workload)
    k = jax_run.steps_per_call
    runners = {"jax_train": jax_run.train, "jax_infer": jax_run.infer}
    if k > 1:  # the loop's way is measured; one step per call is shown beside it
        runners["jax_train_single"] = jax_run.train_single
    if with_torch:
        runners["torch_train"], runners["torch_infer"] = torch_side.torch_run(workload, threads)
    keras_note = None
    if workload.torch_kind == "rnn":  # the recurrent model's peer that also compiles with XLA
        keras_train, keras_note = _keras_arm(workload, options, k)
        if keras_train:
            runners["keras_train"] = keras_train
        else:
            log(f"  {name}: no Keras arm: {keras_note}")
    steps = {key: 1 if options.tiny else timing.steps_for(fn, options.seconds)
             for key, fn in runners.items()}
    steps["jax_train"] = k * math.ceil(steps["jax_train"] / k)  # whole calls only
    stats = timing.interleaved(runners, steps, reps=reps)
    log(f"  {name}: train {stats['jax_train'].rate(workload.batch_size):,.0f} ex/s, inference "
        f"{stats['jax_infer'].rate(workload.batch_size):,.0f} ex/s, compile "
        f"{jax_run.compile_seconds:.1f} s")  # in the log even if a later row never ends
    return {"name": name, "preset": workload.preset, "what": workload.what,
            "dtype": options.dtype, "batch_size": workload.batch_size, "steps_per_call": k,
            "flops": workload.flops, "stats": stats,
            "compile_seconds": jax_run.compile_seconds,
            "first_step_seconds": jax_run.first_step_seconds, "final_loss": jax_run.loss(),
            "keras_note": keras_note}


def _lecture(options, results, reps, log) -> lecture.Table:
    """The lecture's table. This machine's GEMM and AlexNet training come from the gemm and
    models sections when they ran; what they did not measure is measured here: GEMM on
    the backend (and the host CPU's, float32) and AlexNet training alone, at its batch."""
    import jax  # pylint: disable=g-import-not-at-top

    backend, dtype = jax.default_backend(), options.dtype
    view, measured = dict(results), []
    for where, kind in ((backend, dtype), ("cpu", "float32")):
        if lecture.gemm_gflops(view, where, kind) is None:
            view["gemm"] = list(view.get("gemm") or []) + [
                gemm.jax_gemm(where, kind, gemm.sizes_for(where, options.tiny), reps)]
            measured.append(f"GEMM {where} {kind}")
    if lecture.alexnet_training(view, dtype) is None:
        view["models"] = list(view.get("models") or []) + [_alexnet_training(options, reps, log)]
        measured.append(f"AlexNet training ({reps} repetition{'s' if reps > 1 else ''})")
    table = lecture.table(view, options.gpu_records, relative_to=_CHECKOUT)
    how = ("measured by this section: " + ", ".join(measured) if measured
           else "from this run's gemm and models sections")
    return dataclasses.replace(table, notes=[f"This machine's figures: {how}.", *table.notes])


def _alexnet_training(options, reps, log) -> dict:
    """AlexNet's training row alone (the models section's, without inference or peers)."""
    workload = _build("alexnet", options)
    log(f"  {workload.what}: training ...")
    run = workloads.jax_run(workload)
    k = run.steps_per_call
    steps = 1 if options.tiny else timing.steps_for(run.train, options.seconds)
    stats = timing.interleaved({"jax_train": run.train}, {"jax_train": k * math.ceil(steps / k)},
                               reps=reps)
    return {"name": "alexnet", "what": workload.what, "dtype": options.dtype,
            "batch_size": workload.batch_size, "stats": stats}


def _host_ab(name, options, reps) -> dict:
    """Seconds per training step with `tune_host` off and on, in fresh processes (host.py)."""
    spec = {"tiny": options.tiny, "dtype": options.dtype, "seconds": options.seconds,
            "reps": reps, "batch_size": options.batch_sizes.get(workloads.base_name(name))}
    return host.measure(name, spec, pairs=1 if options.tiny else 2)


def _lesson(options):
    """The lesson with the real LeNet step of lenet_mnist (one step in flight)."""
    from jaxnets.train.config import resolve  # pylint: disable=g-import-not-at-top
    from jaxnets.train.inputs import as_inputs  # pylint: disable=g-import-not-at-top
    from jaxnets.train.model_api import as_model  # pylint: disable=g-import-not-at-top
    from jaxnets.train.trainer import Trainer  # pylint: disable=g-import-not-at-top

    workload = workloads.build("lenet", tiny=options.tiny, dtype=_dtype(options.dtype))
    batch_size = 8 if options.tiny else workload.config.batch_size
    blank = np.zeros((batch_size, 28, 28), np.uint8), np.zeros(batch_size, np.int32)
    example = input_lesson.finish(*blank, np.random.default_rng(0))
    config = resolve({**workload.config.to_dict(), "parallel": "sharding", "num_devices": 1,
                      "steps_per_call": 1, "num_steps": 10_000, "seed": 0})
    trainer = Trainer(as_model(workload.module), as_inputs([example]), config)

    def train(batch):
        trainer.train_on(batch)

    lesson = input_lesson.run_lesson(train, batch=batch_size, tiny=options.tiny,
                                     steps=options.lesson_steps, reps=options.reps)
    trainer.check_finite()
    return lesson
