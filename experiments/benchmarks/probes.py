"""The A/B probes behind speedups.md's second round (each prints ms or examples/s).

    python experiments/benchmarks/probes.py --probe=lrn          # NORM: pow vs rsqrt
    python experiments/benchmarks/probes.py --probe=conv_batch   # CONV1 ms per example by batch
    python experiments/benchmarks/probes.py --probe=alexnet      # AlexNet step: conv methods
    python experiments/benchmarks/probes.py --probe=pool         # LeNet step: POOL forms
    python experiments/benchmarks/probes.py --probe=conv_parts   # AlexNet CONVs: fwd, dx, dW

Medians of interleaved repetitions (jaxnets/benchmark/timing.py), malloc tuned as in
training (jaxnets/runtime_options.py).
"""
# pylint: disable=protected-access  (probes compare variants of the kernels' private helpers)

import argparse
import dataclasses
import functools
import time

import jax
import jax.numpy as jnp

from jaxnets import runtime_options
from jaxnets.benchmark import timing, workloads
from jaxnets.models import cnn, kernels


def ms(fn, *args, n=10, reps=3):
    jax.block_until_ready(fn(*args))
    best = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            out = fn(*args)
        jax.block_until_ready(out)
        best.append((time.perf_counter() - start) / n * 1e3)
    return min(best)


def lrn():
    """AlexNet's NORM forward + backward (batch 16): x / d**0.75 vs x * rsqrt(d)*sqrt(rsqrt(d))."""
    def window_sum(x):
        return jax.lax.reduce_window(jnp.square(x), 0.0, jax.lax.add, (1, 1, 1, 5),
                                     (1, 1, 1, 1), ((0, 0), (0, 0), (0, 0), (2, 2)))
    forms = {"pow": lambda x: x / (2.0 + 1e-4 * window_sum(x)) ** 0.75,
             "rsqrt": lambda x: x * kernels.inverse_power(2.0 + 1e-4 * window_sum(x), 0.75)}
    for shape in [(16, 55, 55, 96), (16, 27, 27, 256)]:
        x = jax.random.normal(jax.random.key(0), shape) * 3
        c = jax.random.normal(jax.random.key(1), shape)
        for name, f in forms.items():
            grad = jax.jit(jax.grad(lambda x, c, f=f: jnp.sum(f(x) * c)))
            print(f"NORM {shape[1:]} {name:5s} fwd+bwd {ms(grad, x, c):6.2f} ms")


def conv_batch():
    """XLA:CPU's conv per example as the batch (and its output) grows: AlexNet CONV1."""
    w = jax.random.normal(jax.random.key(1), (11, 11, 3, 96)) * 0.05
    x = jax.random.normal(jax.random.key(0), (16, 227, 227, 3))
    for batch in (1, 2, 4, 8, 16):
        conv = jax.jit(lambda w, x, b=batch: kernels.conv2d(x[:b], w, 4, 0, "xla"))
        out_mb = batch * 55 * 55 * 96 * 4 / 2**20
        print(f"CONV1 batch {batch:2d} (output {out_mb:5.1f} MiB): "
              f"{ms(conv, w, x) / batch:5.2f} ms per example")


def alexnet():
    """The AlexNet training step (batch 16) with each conv method for the 5 CONVs."""
    base = workloads.build("alexnet")

    def with_impl(impl):
        layers = tuple(dataclasses.replace(l, impl=impl) if isinstance(l, cnn.Conv) else l
                       for l in base.module.layers)
        return dataclasses.replace(base, module=base.module.clone(layers=layers))

    runs = {"auto": workloads.jax_run(base),
            "xla (whole batch)": workloads.jax_run(with_impl("xla"))}
    stats = timing.interleaved({n: r.train for n, r in runs.items()},
                               {n: 3 for n in runs}, reps=9)
    for name, stat in stats.items():
        print(f"AlexNet training, CONVs {name:18s} {16 / stat.median:5.1f} ex/s "
              f"({stat.median * 1e3:.0f} ms per step)")


def conv_parts():
    """GFLOP/s of each AlexNet CONV's three products at batch 16 (as training runs them):
    the forward conv, the input gradient and the weight gradient (random cotangents)."""
    module = workloads.build("alexnet").module
    batch, key = 16, jax.random.key(0)
    for layer, in_shape, out_shape in cnn.layer_shapes(module.layers, module.input_shape):
        if not isinstance(layer, cnn.Conv):
            continue
        k_x, k_w, k_dy = jax.random.split(jax.random.fold_in(key, layer.features), 3)
        x = jax.random.normal(k_x, (batch, *in_shape))
        w = jax.random.normal(k_w, (layer.window, layer.window, in_shape[-1],
                                    layer.features)) * 0.05
        dy = jax.random.normal(k_dy, (batch, *out_shape))
        conv = functools.partial(kernels.conv2d, stride=layer.stride, padding=layer.padding,
                                 impl=kernels.conv_method(x.shape, w.shape, layer.stride,
                                                          layer.padding))
        parts = {"forward": jax.jit(conv),
                 "input grad": jax.jit(lambda x, w, c=conv: jax.vjp(lambda x: c(x, w), x)[1](dy)[0]),
                 "weight grad": jax.jit(lambda x, w, c=conv: jax.vjp(lambda w: c(x, w), w)[1](dy)[0])}
        gflop = 2 * batch * layer.flops(in_shape) / 1e9
        for name, fn in parts.items():
            t = ms(fn, x, w)
            print(f"{layer.name} {name:11s} {t:6.1f} ms  {gflop / t * 1e3:4.0f} GFLOP/s")


def _pool_variant(forward, backward):
    """A max_pool(x, window, stride) with the given forward and custom backward."""
    @functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
    def pool(x, window, stride):
        return forward(x, window, stride)

    def fwd(x, window, stride):
        y = pool(x, window, stride)
        return y, (x, y)
    pool.defvjp(fwd, backward)
    return pool


def _taps_max(x, window, stride):  # round 1's forward: the max of the strided slices
    return functools.reduce(jnp.maximum, (t for _, t in kernels._pool_taps(x, window, stride)))


def _pad_add_grad(window, stride, residuals, dy):  # round 1's backward
    x, y = residuals
    dx = jnp.zeros_like(x)
    for (i, j), tap in kernels._pool_taps(x, window, stride):
        end_h = x.shape[1] - i - stride * (y.shape[1] - 1) - 1
        end_w = x.shape[2] - j - stride * (y.shape[2] - 1) - 1
        dx = dx + jax.lax.pad(jnp.where(tap == y, dy, 0.0), 0.0,
                              ((0, 0, 0), (i, end_h, stride - 1), (j, end_w, stride - 1),
                               (0, 0, 0)))
    return (dx,)


def pool():
    """The LeNet training step (batch 128) with each POOL formulation (2x2/2 tiles 28x28)."""
    variants = {
        "slices max, pad + add grad (round 1)": _pool_variant(_taps_max, _pad_add_grad),
        "slices max, interleaved grad": _pool_variant(_taps_max, kernels._max_pool_bwd),
        "reduce max, interleaved grad (now)": kernels.max_pool,
    }
    original, runs = kernels.max_pool, {}
    try:
        for name, variant in variants.items():
            kernels.max_pool = variant  # the layers look it up when jax_run traces them
            runs[name] = workloads.jax_run(workloads.build("lenet"))
    finally:
        kernels.max_pool = original
    stats = timing.interleaved({n: r.train for n, r in runs.items()},
                               {n: 50 for n in runs}, reps=21)
    for name, stat in stats.items():
        print(f"LeNet training, POOL {name:38s} {128 / stat.median:7.0f} ex/s "
              f"({stat.median * 1e3:.2f} ms per step)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe", choices=["lrn", "conv_batch", "alexnet", "pool",
                                            "conv_parts"], required=True)
    args = parser.parse_args()
    runtime_options.tune_host()
    {"lrn": lrn, "conv_batch": conv_batch, "alexnet": alexnet,
     "pool": pool, "conv_parts": conv_parts}[args.probe]()


if __name__ == "__main__":
    main()
