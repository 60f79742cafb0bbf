"""Seconds from `python` starting to a preset's first finished training step.

    python -m jaxnets.benchmark.startup lenet_mnist [CACHE_DIR]   # prints one JSON line

The child does what `python -m jaxnets.experiments.run --model=NAME` does before its
first step, through the loop's own set-up (imports, the dataset with its RAM cache, the
model, the loop's trainer: state, checkpointer and reports; then compiling the loop's
step program and its first call: one step, or `steps_per_call` steps on stacked
batches) and prints when each part ended; `measure` runs it in a fresh
process and times it from the outside, interpreter start included. With CACHE_DIR the
child turns on JAX's persistent compilation cache there
(`jaxnets.runtime_options.enable_compilation_cache`): a second run skips compiling.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

_T0 = time.perf_counter()


def _first_step(name: str, cache_dir: str | None = None) -> dict:
    marks = {}
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    runtime_options.tune_host()
    if cache_dir:
        runtime_options.enable_compilation_cache(cache_dir)
    import jax  # pylint: disable=g-import-not-at-top
    import tempfile  # pylint: disable=g-import-not-at-top

    from jaxnets import configs  # pylint: disable=g-import-not-at-top
    from jaxnets.train import experiment  # pylint: disable=g-import-not-at-top
    from jaxnets.train.inputs import as_inputs  # pylint: disable=g-import-not-at-top
    from jaxnets.train.model_api import as_model  # pylint: disable=g-import-not-at-top
    from jaxnets.train.reporting import Reporter  # pylint: disable=g-import-not-at-top
    from jaxnets.train.rundir import RunDir  # pylint: disable=g-import-not-at-top
    from jaxnets.train.trainer import Trainer  # pylint: disable=g-import-not-at-top
    marks["imports"] = time.perf_counter() - _T0
    config = configs.get(name)  # validated
    with tempfile.TemporaryDirectory() as workdir:  # as train_and_evaluate, then fit
        run = RunDir(workdir)
        with run.claimed():
            dataset = experiment.load_dataset(config, run)
            marks["data"] = time.perf_counter() - _T0
            model = experiment.model_from_config(config, dataset)
            experiment.stage_run_files(run, config, dataset)
            trainer = Trainer(as_model(model), as_inputs(dataset), config, run)
            run.begin(config)
            reporter = Reporter(run, config.preset, progress=False)  # as fit's loop opens it
            marks["state"] = time.perf_counter() - _T0
            items = trainer.batches()
            trainer.train_on(next(items))  # the loop's first call: compile, then 1 or k steps
            jax.block_until_ready(trainer.state)
            marks["first_step"] = time.perf_counter() - _T0
            items.close()
            reporter.close()
    return marks


def measure(name: str, cache_dir: str | None = None, timeout: float = 600) -> dict:
    """The child's marks plus "total": seconds from spawning `python` to the moment its
    first step was reported (interpreter start and imports included); or {"error": ...}."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "jaxnets.benchmark.startup", name]
                             + ([cache_dir] if cache_dir else []),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # blocks until the first step is done (or exit)
        total = time.perf_counter() - started
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        return {"error": f"no first step within {timeout:.0f} s"}
    if not line.startswith("{"):
        tail = (err.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {child.returncode}: {tail[:160]}"}
    return {**json.loads(line), "total": total}


if __name__ == "__main__":
    print(json.dumps(_first_step(*sys.argv[1:3])), flush=True)


def all_presets() -> list[dict]:
    """Per preset: a cold start, then a start with the compilation cache warm."""
    import tempfile  # pylint: disable=g-import-not-at-top

    from jaxnets import configs  # pylint: disable=g-import-not-at-top
    rows = []
    for name in configs.PRESETS:
        with tempfile.TemporaryDirectory(prefix="jaxnets-xla-cache-") as cache:
            cold = measure(name, cache)
            warm = measure(name, cache) if "error" not in cold else cold
        rows.append({"preset": name, "cold": cold, "warm": warm})
    return rows
