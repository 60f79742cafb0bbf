"""Training examples/s of two checkouts of jaxnets, in alternating fresh processes.

    git worktree add /tmp/before a016deb
    python experiments/benchmarks/tree_ab.py /tmp/before . --rounds=3

Each process imports jaxnets from its tree, builds the benchmark's workloads
(`jaxnets.benchmark.workloads.jax_run`: the preset's steps per call) and prints the median
examples/s of `reps` repetitions of a fixed number of steps. The order is before, after,
after, before, ... so a drift of the machine falls on both. Used for speedups.md's eighth
round (issue 16: the engine's redesign must not lower the ratios against PyTorch, whose
side does not change with jaxnets).
"""

import json
import os
import subprocess
import sys
import time

WORKLOADS = {"lenet": 100, "rnn": 74, "alexnet": 3}  # whole calls of the presets' k


def child(reps: int) -> dict:
    from jaxnets import runtime_options
    runtime_options.tune_host()
    from jaxnets.benchmark import workloads
    out = {}
    for name, steps in WORKLOADS.items():
        workload = workloads.build(name)
        run = workloads.jax_run(workload)
        run.train(steps)  # warm
        seconds = []
        for _ in range(reps):
            start = time.perf_counter()
            run.train(steps)
            seconds.append((time.perf_counter() - start) / steps)
        out[name] = workload.batch_size / sorted(seconds)[len(seconds) // 2]
    return out


def main(before: str, after: str, rounds: int = 3, reps: int = 7) -> None:
    order = [(before, after), (after, before)]
    for r in range(rounds):
        for tree in order[r % 2]:
            tree = os.path.abspath(tree)
            env = {**os.environ, "PYTHONPATH": tree}
            line = subprocess.run([sys.executable, __file__, "--child", str(reps)], cwd=tree,
                                  env=env, capture_output=True, text=True, check=True
                                  ).stdout.strip().splitlines()[-1]
            load = open("/proc/loadavg").read().split()[0]
            print(f"{'before' if tree == os.path.abspath(before) else 'after'} "
                  f"{json.dumps({k: round(v) for k, v in json.loads(line).items()})} "
                  f"load={load}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]))))
    else:
        rounds = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--rounds=")), 3)
        main(sys.argv[1], sys.argv[2], rounds)
