"""`runtime_options.tune_host` on vs off, each arm in fresh processes.

    python -m jaxnets.benchmark.host lenet on '{"seconds": 1, "reps": 5}'  # one JSON line

Fresh processes, because an untuned process is not one with the tuning switched off:
glibc raises its mmap threshold by itself (up to 32 MiB) until a program sets it, and
then never again; and XLA:CPU's dispatch is fixed when JAX starts. So each child starts
as a user's process does, tunes the host or not, then times the workload's training
steps as the loop calls them; the parent alternates off and on children.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from jaxnets.benchmark import timing


def _child(name: str, on: bool, spec: dict) -> dict:
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    if on:
        runtime_options.tune_host()  # before JAX starts, as run.py
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    from jaxnets.benchmark import workloads  # pylint: disable=g-import-not-at-top
    dtype = None if spec.get("dtype", "float32") == "float32" else jnp.dtype(spec["dtype"])
    workload = workloads.build(name, tiny=spec.get("tiny", False), dtype=dtype,
                               batch_size=spec.get("batch_size"))
    run = workloads.jax_run(workload)
    k = run.steps_per_call
    steps = 1 if spec.get("tiny") else timing.steps_for(run.train, spec.get("seconds", 1.0))
    steps = k * -(-steps // k)  # whole calls, as the loop makes them
    seconds = []
    for _ in range(spec.get("reps", 1)):
        start = time.perf_counter()
        run.train(steps)
        seconds.append((time.perf_counter() - start) / steps)
    import jax  # pylint: disable=g-import-not-at-top
    return {"what": workload.what, "batch_size": workload.batch_size, "seconds": seconds,
            "async_dispatch": jax.config.values["jax_cpu_enable_async_dispatch"]}


def _spawn(name: str, on: bool, spec: dict, timeout: float) -> dict:
    child = subprocess.run(
        [sys.executable, "-m", "jaxnets.benchmark.host", name, "on" if on else "off",
         json.dumps(spec)], capture_output=True, text=True, timeout=timeout)
    line = (child.stdout.strip().splitlines() or [""])[-1]
    if child.returncode or not line.startswith("{"):
        tail = (child.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"host child ({name}, {'on' if on else 'off'}) exited "
                           f"{child.returncode}: {tail[:200]}")
    return json.loads(line)


def measure(name: str, spec: dict, pairs: int = 2, timeout: float = 600) -> dict:
    """Seconds per training step with tune_host off and on: `pairs` children per arm,
    alternating (off, on), (on, off), ...; each child times spec["reps"] repetitions."""
    seconds, dispatch, row = {False: [], True: []}, {}, {}
    for pair in range(pairs):
        for on in ((False, True) if pair % 2 == 0 else (True, False)):
            row = _spawn(name, on, spec, timeout)
            seconds[on] += row["seconds"]
            dispatch[on] = row["async_dispatch"]
    return {"name": name, "what": row["what"], "batch_size": row["batch_size"],
            "off": timing.Stat.of(seconds[False]), "on": timing.Stat.of(seconds[True]),
            "async_dispatch": {"off": dispatch[False], "on": dispatch[True]}}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2] == "on", json.loads(sys.argv[3]))),
          flush=True)
