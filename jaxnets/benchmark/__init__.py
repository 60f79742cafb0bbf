"""The lecture's speed lessons measured on this machine, against PyTorch.

    python -m jaxnets.experiments.benchmark                   # everything, ~12 minutes on 2 cores
    python -m jaxnets.experiments.benchmark --sections=models --models=lenet
    python -m jaxnets.experiments.benchmark --tiny            # seconds: a smoke test
    python -m jaxnets.experiments.benchmark --sections=lecture   # the lecture's table

Modules:
  flops.py         model FLOPs per example (the lecture's arithmetic; 3x forward to train)
  gemm.py          GEMM GFLOP/s per backend and dtype: the peak the models are held to
  workloads.py     the presets' models at the issue's sizes, as jaxnets trains them
  torch_side.py    the same in PyTorch eager (optional: pip install torch==2.13.0)
  keras_side.py    the RNN in Keras 3 on the JAX backend, the peer that also compiles with
                   XLA (optional: pip install keras; imported only by that arm)
  lecture.py       the lecture's CPU vs GPU table, with this machine and the recorded GPU
                   runs beside its rows (GEMM GFLOP/s, AlexNet training images/s)
  hardware.py      cores, clock, memory of the CPU and GPUs, as the machine reports them
  input_lesson.py  disk (TFRecords, page cache dropped) vs naive loading vs RAM cache vs
                   thread prefetch vs device prefetch
  storage.py       TFRecord files without TensorFlow, the page-cache drop, the disk's type
  stall.py         input stall of every preset with its real pipeline
  startup.py       seconds from `python` to each preset's first training step
  host.py          training with and without runtime_options.tune_host, fresh processes
  timing.py        interleaved repetitions and medians; what machine this was
  suite.py         the sections together (`Options`, `run`)
  report.py        Markdown and JSON, with the targets of issue 7

Nothing here imports TensorFlow except the stall section's tf.data presets (skipped
when TensorFlow is absent), so it runs on a GPU machine with JAX alone.
"""

from jaxnets.benchmark.suite import GPU_RECORDS, SECTIONS, Options, run

__all__ = ["GPU_RECORDS", "SECTIONS", "Options", "run"]
