"""The RNN's training step against its peers, interleaved in one process (issue 18).

    python experiments/benchmarks/rnn_step.py [--reps=7] [--seconds=1] [--no_compile]
        [--host_devices=2] [--keras_data_parallel]

The benchmark's rnn workload (rnn_sentiment's classifier, H=128, T=200, batch 64,
jaxnets/benchmark/workloads.py), trained by:

  after          jaxnets as it is: the loop's Trainer, the preset's 37 steps per call
  host_devices=2 the same with `--config.host_devices=2`: the CPU split into 2 devices,
                 trained data-parallel (pmap) on them (--host_devices=0: no such arm;
                 on a CPU only). The process starts with its CPU split; the other arms
                 run on its first device.
  before         the same, with the vanilla cell's scan sent through the generic
                 `rnn_kernels.split_scan` (what every cell ran before `vanilla_scan`; still the
                 LSTM's and GRU's form), traced under a patch, so both compile in one process
  keras          Keras 3 on the JAX backend, `model.fit` (jaxnets/benchmark/keras_side.py)
  keras, data-parallel  with --keras_data_parallel: the same under Keras'
                 `DataParallel` over the split CPU's devices
  torch          PyTorch eager (jaxnets/benchmark/torch_side.py)
  torch.compile  the same module through `torch.compile` (skipped if it fails, or with
                 --no_compile)

Each repetition runs every arm once for about --seconds, the order rotating
(jaxnets/benchmark/timing.py); the table gives medians and the ratio of `after` to each.
Used for experiments/benchmarks/rnn_step.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time


def _arg(name, default):
    return next((type(default)(a.split("=", 1)[1]) for a in sys.argv[1:]
                 if a.startswith(f"--{name}=")), default)


@contextlib.contextmanager
def _generic_scan():
    """The vanilla cell through `rnn_kernels.split_scan` while programs are traced inside."""
    from jaxnets.models import rnn, rnn_kernels  # pylint: disable=g-import-not-at-top
    fast = rnn_kernels.vanilla_scan

    def generic(W_hh, h0, xp, mask):
        traced.append(xp.shape)
        return rnn_kernels.split_scan(rnn._vanilla_gates, lambda h: h, W_hh, (), h0, xp, mask)  # pylint: disable=protected-access

    traced = []
    rnn_kernels.vanilla_scan = generic
    try:
        yield
        if not traced:  # a cached trace of the other arm would make both arms one program
            raise RuntimeError("the 'before' arm reused a trace of the fast scan")
    finally:
        rnn_kernels.vanilla_scan = fast


def _torch_compiled(workload, threads):
    """train(n) of the PyTorch model through torch.compile (inductor), compiled here."""
    import numpy as np  # pylint: disable=g-import-not-at-top

    from jaxnets.benchmark import torch_side  # pylint: disable=g-import-not-at-top
    torch = torch_side.setup(threads)
    nn = torch.nn
    model = torch_side._rnn(nn, workload.torch_sizes)  # pylint: disable=protected-access
    optimizer = torch_side._optimizer(torch, model, workload.config)  # pylint: disable=protected-access
    inputs = torch.from_numpy(workload.batch["tokens"].astype(np.int64))
    labels = torch.from_numpy(workload.batch["label"].astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()
    compiled = torch.compile(model)

    def train(n):
        model.train()
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(compiled(inputs), labels).backward()
            nn.utils.clip_grad_norm_(model.parameters(), workload.config.grad_clip_norm)
            optimizer.step()

    train(2)  # compile (forward and backward)
    return train


def main() -> None:
    reps, seconds = _arg("reps", 7), _arg("seconds", 1.0)
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    from jaxnets.benchmark import (keras_side, timing, torch_side,  # pylint: disable=g-import-not-at-top
                                   workloads)
    torch_side.prepare()
    runtime_options.tune_host()
    host_devices = _arg("host_devices", 2)
    runtime_options.split_host(host_devices)
    machine = timing.machine()
    workload = workloads.build("rnn")
    runners, notes = {}, []
    after = workloads.jax_run(workload)
    k = after.steps_per_call
    runners["after"] = after.train
    split = f"host_devices={host_devices}"
    if host_devices > 1 and machine["backend"] == "cpu":
        runners[split] = workloads.jax_run(workload, num_devices=host_devices).train
    with _generic_scan():
        runners["before"] = workloads.jax_run(workload).train
    reason = keras_side.skip_reason(workload)
    if reason:
        notes.append(f"keras: {reason}")
    else:
        runners["keras"] = keras_side.keras_run(workload, steps_per_execution=k)
        if "--keras_data_parallel" in sys.argv and split in runners:
            runners["keras, data-parallel"] = keras_side.keras_run(
                workload, steps_per_execution=k, data_parallel=True)
    threads = machine["cpu_cores"]
    if torch_side.available():
        runners["torch"] = torch_side.torch_run(workload, threads)[0]
        if "--no_compile" not in sys.argv:
            started = time.perf_counter()
            try:
                runners["torch.compile"] = _torch_compiled(workload, threads)
                notes.append(f"torch.compile: compiled in {time.perf_counter() - started:.0f} s")
            except Exception as e:  # pylint: disable=broad-except
                notes.append(f"torch.compile failed: {type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0][:200] if str(e) else ''}")
    else:
        notes.append("torch: not installed")
    steps = {name: timing.steps_for(fn, seconds) for name, fn in runners.items()}
    jaxnets_arms = [n for n in ("after", "before", split) if n in steps]
    for name in jaxnets_arms:  # whole calls of k steps, the same number for each
        steps[name] = k * max(1, math.ceil(max(steps[n] for n in jaxnets_arms) / k))
    load_start = timing.load_average()
    stats = timing.interleaved(runners, steps, reps=reps)
    load_end = timing.load_average()
    batch = workload.batch_size
    print(f"command: python experiments/benchmarks/rnn_step.py {' '.join(sys.argv[1:])}")
    print(f"machine: {machine['cpu']}, {machine['cpu_cores']} cores; "
          + ", ".join(f"{p} {v}" for p, v in machine["versions"].items()))
    print(f"{machine['date']}; load average {load_start} at the start of the timing, "
          f"{load_end} at the end; {reps} interleaved repetitions; steps per repetition "
          + ", ".join(f"{n} {s}" for n, s in steps.items()))
    print()
    ratios = ["after"] + ([split] if split in stats else [])
    print("| arm | training examples/s (median) | spread | "
          + " | ".join(f"{r} / this" for r in ratios) + " |")
    print("|---|---|---|" + "---|" * len(ratios))
    for name, stat in stats.items():
        print(f"| {name} | {stat.rate(batch):,.0f} | {batch / stat.high:,.0f}..{batch / stat.low:,.0f} | "
              + " | ".join(f"{stats[name].median / stats[r].median:.2f}x" for r in ratios) + " |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    main()
