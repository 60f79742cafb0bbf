r"""Benchmark jaxnets: GEMM peak, the presets' models against PyTorch, the lecture's CPU vs
GPU table, input pipelines.

  python -m jaxnets.experiments.benchmark
  python -m jaxnets.experiments.benchmark --sections=gemm,models --models=lenet,rnn
  python -m jaxnets.experiments.benchmark --dtype=bfloat16 --torch=no     # e.g. on a GPU
  python -m jaxnets.experiments.benchmark --sections=gemm,models --batch_sizes=alexnet=1024
  python -m jaxnets.experiments.benchmark --tiny --out=/tmp/bench          # a smoke run
  python -m jaxnets.experiments.benchmark --sections=lecture --name=cpu_lecture  # the
      # lecture's CPU vs GPU table alone: GEMM + a short AlexNet run, ~1 min on 2 cores

Prints the tables and writes them to --out as <backend>.md and <backend>.json
(experiments/benchmarks/ by default; --tiny writes nothing unless --out is given).
Stopped by SIGTERM (e.g. `timeout`), it still writes the rows measured so far.
See jaxnets/benchmark/ for what each number means.
"""

from __future__ import annotations

import os
import signal
import sys

from absl import flags

from jaxnets import cli

_SECTIONS = flags.DEFINE_list("sections", "gemm,models,lecture,host,lesson,stall,startup",
                              "Any of gemm, models, lecture, host, lesson, stall, startup.")
_MODELS = flags.DEFINE_list("models", "lenet,alexnet,rnn", "Workloads of the models section "
                            "(also lenet_xla, alexnet_xla: the same on XLA's own conv/pool).")
_BATCH_SIZES = flags.DEFINE_list(
    "batch_sizes", [], "Per-model batch overrides, e.g. alexnet=1024,lenet=8192,rnn=2048 "
    "(the defaults are a CPU's sizes; a GPU needs larger ones). alexnet_xla takes alexnet's.")
_REPS = flags.DEFINE_integer("reps", 5, "Interleaved repetitions per measurement.",
                             lower_bound=1)
_SECONDS = flags.DEFINE_float("seconds", 1.0, "Length of one timed repetition.",
                              lower_bound=0.01)
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "Computation dtype of the models (parameters stay float32).")
_TORCH = flags.DEFINE_enum("torch", "auto", ["auto", "yes", "no"],
                           "Run PyTorch side by side (auto: if installed; CPU only).")
_KERAS = flags.DEFINE_enum("keras", "auto", ["auto", "yes", "no"],
                           "Train the RNN in Keras 3 on the JAX backend side by side (auto: if "
                           "installed).")
_THREADS = flags.DEFINE_integer("threads", 0, "Threads for PyTorch (0: the usable cores, "
                                "which XLA uses too).", lower_bound=0)
_STALL_STEPS = flags.DEFINE_integer("stall_steps", 500, "Steps per window of the stall section.",
                                    lower_bound=1)
_LESSON_STEPS = flags.DEFINE_integer("lesson_steps", 300, "Steps per row of the lesson.",
                                     lower_bound=1)
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir for the stall section.")
_TINY = flags.DEFINE_bool("tiny", False, "Shrink everything (a smoke test, seconds).")
_TUNE_HOST = flags.DEFINE_bool("tune_host", True, "Apply jaxnets.runtime_options.tune_host() "
                               "(--notune_host measures without it).")
_GPU_RECORDS = flags.DEFINE_string(
    "gpu_records", None, "Directory of recorded GPU runs (benchmark JSON) for the lecture "
    "table (default: this checkout's experiments/benchmarks/gpu; '' for none).")
_OUT = flags.DEFINE_string("out", None, "Directory for the tables (default "
                           "experiments/benchmarks; with --tiny, none).")
_NAME = flags.DEFINE_string("name", None, "File name without extension (default: the backend, "
                            "plus the dtype when not float32).")


class _Stopped(BaseException):
    """SIGTERM: not an Exception, so no per-workload handler swallows it."""


def _stop(signum, frame):
    raise _Stopped()


def _out_dir() -> str | None:
    """Where the tables go (None: only printed), created now: a bad --out fails first."""
    out = _OUT.value if _OUT.value is not None else (None if _TINY.value else
                                                     os.path.join("experiments", "benchmarks"))
    if out:
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            raise ValueError(f"--out={out}: cannot create the directory ({e.strerror}); "
                             "give a writable directory") from None
        if not os.access(out, os.W_OK):
            raise ValueError(f"--out={out}: the directory is not writable; give another")
    return out


def main(argv) -> int:
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {' '.join(argv[1:])}; flags look like --name=value")
    from jaxnets import benchmark  # pylint: disable=g-import-not-at-top
    from jaxnets.benchmark import report, workloads  # pylint: disable=g-import-not-at-top

    unknown = sorted(set(_SECTIONS.value) - set(benchmark.SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(benchmark.SECTIONS)}")
    choices = workloads.NAMES + workloads.REFERENCES
    for name in _MODELS.value:
        if name not in choices:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(choices)}")
    batch_sizes = workloads.parse_batch_sizes(_BATCH_SIZES.value)
    out = _out_dir()  # checked before the minutes of measuring, not after
    options = benchmark.Options(
        sections=tuple(_SECTIONS.value), models=tuple(_MODELS.value), reps=_REPS.value,
        seconds=_SECONDS.value, dtype=_DTYPE.value, torch=_TORCH.value, keras=_KERAS.value,
        threads=_THREADS.value, stall_steps=_STALL_STEPS.value,
        lesson_steps=_LESSON_STEPS.value, data_dir=_DATA_DIR.value, tiny=_TINY.value,
        tune_host=_TUNE_HOST.value, batch_sizes=batch_sizes,
        gpu_records=benchmark.GPU_RECORDS if _GPU_RECORDS.value is None else _GPU_RECORDS.value)
    results = {}
    signal.signal(signal.SIGTERM, _stop)
    try:
        benchmark.run(options, log=lambda line: print(line, file=sys.stderr, flush=True),
                      results=results)
    except _Stopped:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process
        if "machine" not in results:
            raise SystemExit("error: stopped (SIGTERM) before anything was measured") from None
        results["failures"].append({"section": "all", "name": "-", "error":
                                    "stopped by SIGTERM (a time limit): later rows missing"})
    command = "python -m jaxnets.experiments.benchmark " + " ".join(sys.argv[1:])
    print(report.markdown(results, command.strip()))
    if out:
        backend = results["machine"]["backend"]
        name = _NAME.value or (backend if _DTYPE.value == "float32" else f"{backend}_{_DTYPE.value}")
        for path in report.write(results, out, name, command.strip()):
            print(f"wrote {path}", file=sys.stderr)
    if results["failures"]:  # after writing: the other rows are kept
        print(f"error: {len(results['failures'])} workload(s) failed: " + "; ".join(
            f"{f['section']} {f['name']}: {f['error']}" for f in results["failures"]),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main)
