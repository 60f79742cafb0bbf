"""Where the RNN's training step goes: a jax.profiler trace of one call, summed per XLA op.

    python experiments/benchmarks/rnn_profile.py [--top=30] [--trace_dir=/tmp/rnn_profile]

Trains the benchmark's rnn workload as the loop does (`workloads.jax_run`: 37 steps per
call), traces one call and prints, per XLA operation (a thunk: a fusion, a YNNPACK or
Eigen product, a while loop), its wall time per step summed over XLA's threads and how
often it ran per step, with the JAX operation it came from (XLA dumps the step program
into a temporary directory for the names). Loops include what runs inside them (their rows overlap). Eigen's
products run asynchronously: the row of a `dot` is the time to start it, its work shows up
in whatever runs beside it. The tracer adds ~20% to the loops (five thunks per iteration).
Used for experiments/benchmarks/rnn_step.md.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import sys
import tempfile


def _arg(name, default):
    return next((type(default)(a.split("=", 1)[1]) for a in sys.argv[1:]
                 if a.startswith(f"--{name}=")), default)


def _jax_names(dump_dir: str) -> dict[str, str]:
    """HLO op name -> the end of its JAX op_name, from the step program XLA dumped."""
    names = {}
    for path in glob.glob(f"{dump_dir}/*jit_train_steps.cpu_after_optimizations.txt"):
        for line in open(path, encoding="utf-8"):
            found = re.match(r'\s*(?:ROOT )?%(\S+) = .*?op_name="([^"]+)"', line)
            if found:
                names[found[1]] = "/".join(found[2].split("/")[-3:])
    return names


def main() -> None:
    dump_dir = tempfile.mkdtemp(prefix="rnn_profile_hlo_")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_dump_to={dump_dir} --xla_dump_hlo_as_text")
    import jax  # pylint: disable=g-import-not-at-top
    from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top

    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    from jaxnets.benchmark import timing, workloads  # pylint: disable=g-import-not-at-top
    runtime_options.tune_host()
    run = workloads.jax_run(workloads.build("rnn"))
    k = run.steps_per_call
    run.train(2 * k)
    trace_dir = _arg("trace_dir", "/tmp/rnn_profile")
    jax.profiler.start_trace(trace_dir)
    run.train(k)
    jax.profiler.stop_trace()
    trace = sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))[-1]
    total, count = collections.Counter(), collections.Counter()
    for plane in ProfileData.from_file(trace).planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):   # XLA:CPU's threads
                continue
            for event in line.events:
                if event.name != "ThunkExecutor::Execute" and not event.name.startswith("end:"):
                    total[event.name] += event.duration_ns
                    count[event.name] += 1
    print(f"command: python experiments/benchmarks/rnn_profile.py {' '.join(sys.argv[1:])}")
    machine = timing.machine()
    print(f"{machine['date']}; {machine['cpu']}, {machine['cpu_cores']} cores; "
          f"load average {timing.load_average()}; one call of {k} steps, traced")
    print()
    jax_names = _jax_names(dump_dir)
    print("| XLA op | ms per step | runs per step | JAX op (the end of its name) |")
    print("|---|---|---|---|")
    for name, ns in total.most_common(_arg("top", 30)):
        print(f"| {name} | {ns / 1e6 / k:.3f} | {count[name] / k:.0f} | "
              f"{jax_names.get(name, '')} |")


if __name__ == "__main__":
    main()
