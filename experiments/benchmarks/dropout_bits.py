"""Dropout's random bits on the CPU: JAX's threefry against faster generators (issue 18).

    python experiments/benchmarks/dropout_bits.py [--reps=9] [--steps_per_call=37]

The training step computes fold_in(state.rng, step), a threefry key, and flax's
nn.Dropout draws its mask from it with jax.random.bernoulli. On the CPU, JAX lowers the
threefry hash as a rolled loop (5 iterations of 4 rounds). The variants, each a typed key
built from the same raw threefry key (the TrainState's uint32[2] stays as it is):

  threefry     the raw key as a typed threefry key: what the step passed before round 11
  rbg          jax.random.wrap_key_data(<4 words: the key's two threefry children>,
               impl="rbg"): bits from `lax.rng_bit_generator`'s default (Philox on the CPU);
               other masks
  xla_3fry     the same 4 words under a `define_prng_impl` whose bits come from
               `lax.rng_bit_generator(..., algorithm=RNG_THREE_FRY)` (split and fold_in
               threefry's, on each half, as "rbg" does); other masks
  unrolled     jaxnets.train.dropout_key: a `define_prng_impl` with threefry's seed, split
               and fold_in and the same 20-round hash written out as one elementwise
               expression: bitwise the threefry masks (checked here); what FlaxModel.apply
               hands a model since round 11

Part 1 times the embedding dropout's mask alone (64 x 200 x 64 values, p = 0.3, applied
with `where`); part 2 the benchmark's rnn training step (jaxnets/benchmark/workloads.py) with
the model's key swapped by a patch of FlaxModel.apply while each arm is traced. Both
interleaved (jaxnets/benchmark/timing.py). Used for experiments/benchmarks/rnn_step.md.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnets.train.dropout_key import dropout_key

_THREEFRY = jax.extend.random.threefry_prng_impl


def _arg(name, default):
    return next((type(default)(a.split("=", 1)[1]) for a in sys.argv[1:]
                 if a.startswith(f"--{name}=")), default)


def _halves(fn, key, *args):
    def one(half):
        return jax.random.key_data(fn(jax.random.wrap_key_data(half, impl="threefry2x32"), *args))
    return jax.vmap(one, out_axes=-2)(key.reshape(2, 2))


def _xla_bits(key, bit_width, shape):
    dtype = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32, 64: jnp.uint64}[bit_width]
    return lax.rng_bit_generator(key, shape, dtype=dtype,
                                 algorithm=lax.RandomAlgorithm.RNG_THREE_FRY)[1]


XLA_THREEFRY = jax.extend.random.define_prng_impl(
    key_shape=(4,),
    seed=lambda seed: jnp.tile(_THREEFRY.seed(seed), 2),
    split=lambda key, shape: _halves(jax.random.split, key, shape).reshape(*shape, 4),
    random_bits=_xla_bits,
    fold_in=lambda key, data: _halves(jax.random.fold_in, key, data).reshape(4),
    name="xla_threefry", tag="xla3")


def _four_words(raw):
    return jax.random.key_data(jax.random.split(jax.random.wrap_key_data(raw))).reshape(4)


KEYS = {
    "threefry": jax.random.wrap_key_data,
    "rbg": lambda raw: jax.random.wrap_key_data(_four_words(raw), impl="rbg"),
    "xla_3fry": lambda raw: jax.random.wrap_key_data(_four_words(raw), impl=XLA_THREEFRY),
    "unrolled": dropout_key,
}


def _dropout(make_key):
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    return jax.jit(lambda raw, x: nn.Dropout(0.3).apply(
        {}, x, deterministic=False, rngs={"dropout": make_key(raw)}))


def _interleaved(fns, args, n, reps):
    times = {name: [] for name in fns}
    for name, fn in fns.items():
        jax.block_until_ready(fn(*args))
    for rep in range(reps):
        order = list(fns)[rep % len(fns):] + list(fns)[:rep % len(fns)]
        for name in order:
            started = time.perf_counter()
            for _ in range(n):
                out = fns[name](*args)
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - started) / n * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


@contextlib.contextmanager
def _model_key(make_key):
    """FlaxModel.apply gives the module make_key(rng) while steps are traced inside."""
    from jaxnets.train import model_api  # pylint: disable=g-import-not-at-top
    apply = model_api.FlaxModel.apply

    def patched(self, params, model_state, batch, *, train, rng):
        if train and rng is not None:
            rng = make_key(rng)
        return apply(self, params, model_state, batch, train=train, rng=rng)

    model_api.FlaxModel.apply = patched
    try:
        yield
    finally:
        model_api.FlaxModel.apply = apply


def main() -> None:
    reps, k = _arg("reps", 9), _arg("steps_per_call", 37)
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    from jaxnets.benchmark import timing, workloads  # pylint: disable=g-import-not-at-top
    runtime_options.tune_host()
    raw = jax.random.key_data(jax.random.fold_in(jax.random.PRNGKey(0), 7))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((64, 200, 64), np.float32))
    masks = {name: _dropout(make) for name, make in KEYS.items()}
    reference = np.asarray(masks["threefry"](raw, x))
    print(f"load average {timing.load_average()}")
    for name, fn in masks.items():
        out = np.asarray(fn(raw, x))
        same = "bitwise the threefry output" if (out == reference).all() else "other masks"
        big = jax.random.bernoulli(KEYS[name](raw), 0.7, (4096, 4096)).mean()
        print(f"{name}: {same}; keep fraction over 4096 x 4096 draws at p_keep 0.7: "
              f"{float(big):.5f}")
    print("\n| mask of 819,200 values | ms (median) | threefry / this |\n|---|---|---|")
    ms = _interleaved(masks, (raw, x), 50, reps)
    for name, value in ms.items():
        print(f"| {name} | {value:.2f} | {ms['threefry'] / value:.2f}x |")

    workload = workloads.build("rnn")
    runners = {}
    for name, make in KEYS.items():
        with _model_key(make):
            runners[name] = workloads.jax_run(workload, steps_per_call=k).train
    steps = k * max(1, math.ceil(timing.steps_for(runners["threefry"], 1.0) / k))
    load = timing.load_average()
    stats = timing.interleaved(runners, {name: steps for name in runners}, reps=reps)
    print(f"\nrnn training step, {k} steps per call, {steps} steps per repetition, {reps} "
          f"repetitions; load average {load} -> {timing.load_average()}")
    print(timing.speed_table(stats, workload.batch_size, "threefry", first_column="key"))


if __name__ == "__main__":
    main()
