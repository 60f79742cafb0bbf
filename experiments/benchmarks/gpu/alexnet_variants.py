"""AlexNet training on a GPU: where the time goes, by variants of the same step.

    python3 experiments/benchmarks/gpu/alexnet_variants.py --batch=1024 --dtype=bfloat16

Times the benchmark's AlexNet training step (jaxnets/benchmark/workloads.py: the real
create_state + train_step) as built, and variants: CONV1 as space-to-depth + stride-1
conv (48 input channels instead of 3: tensor-core friendly), and without its NORM layers (what LRN costs; not a model anyone should train here).
Prints examples/s, achieved TFLOP/s (the lecture's FLOPs, training = 3 x forward) and
compile seconds per variant.
"""

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp

from jaxnets.benchmark import timing, workloads
from jaxnets.models.cnn import Conv, LocalResponseNorm


def variant(workload, name):
    layers = workload.module.layers
    if name == "conv1_s2d":
        layers = tuple(dataclasses.replace(l, impl="xla_s2d") if getattr(l, "name", "") == "CONV1"
                       else l for l in layers)
    elif name == "no_norm":
        layers = tuple(l for l in layers if not isinstance(l, LocalResponseNorm))
    return dataclasses.replace(workload, module=workload.module.clone(layers=layers))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--variants", default="as_built,conv1_s2d,no_norm")
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    base = workloads.build("alexnet", dtype=jnp.dtype(args.dtype), batch_size=args.batch)
    runs = {}
    for name in args.variants.split(","):
        started = time.perf_counter()
        runs[name] = workloads.jax_run(variant(base, name))
        print(f"{name}: compiled in {runs[name].compile_seconds:.1f} s "
              f"(built + first step {time.perf_counter() - started:.1f} s)", flush=True)
    steps = {name: timing.steps_for(run.train, args.seconds) for name, run in runs.items()}
    stats = timing.interleaved({n: r.train for n, r in runs.items()}, steps, reps=3)
    flops = base.flops["train"] * args.batch
    print(f"AlexNet training, batch {args.batch}, {args.dtype}, {jax.devices()[0].device_kind}")
    for name, stat in stats.items():
        per_step = stat.median
        print(f"  {name:10s} {args.batch / per_step:10,.0f} ex/s  "
              f"{flops / per_step / 1e12:6.1f} TFLOP/s  loss {runs[name].loss():.3f}")


if __name__ == "__main__":
    main()
