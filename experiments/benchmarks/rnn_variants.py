"""Variants of the RNN's training step against jaxnets as it is, interleaved in one process.

    python experiments/benchmarks/rnn_variants.py current no_ynn w_transposed ... [--reps=7]
        [--check]

The benchmark's rnn workload (jaxnets/benchmark/workloads.py) trained as the loop does
(`workloads.jax_run`: the Trainer, the preset's 37 steps per call). Each named variant is
traced and compiled under a patch of jaxnets, then every arm runs 2 calls per repetition,
the order rotating (jaxnets/benchmark/timing.py); the ratios are each arm's speed over the
first one's. Arms built first run a few % faster in such a process: put the candidate first.
`--check` also trains each arm 3 calls from the same state and says whether its
parameters equal `current`'s bit for bit. Naming `two_devices` starts XLA with two host
devices for the whole process (the other arms run on the first).

Variants (what was tried in rnn_step.md's round 12, none kept):

  current             jaxnets as it is
  copy                this file's copy of `rnn_kernels.vanilla_scan` (a control: it must
                      equal `current` bit for bit, and in speed)
  no_ynn              the step compiled without YNNPACK fusions (Eigen for every product)
  w_transposed        the backward loop multiplies by W_hh^T transposed once, outside
  chunked_dw          `contract_rows` as 8 chunks of rows, one batched product, summed
  h_stack_transposed  the forward loop stores h_{t-1}^T in an (H, T, B) stack, so dW_hh
                      is a plain (H, T*B) @ (T*B, H) product (YNNPACK); the backward loop
                      reads each state back and transposes it
  bits_barrier        dropout's written-out bits in one pass, kept from their users by
                      `lax.optimization_barrier` instead of the loop of two halves
  bits_loop_of_one    the same pass inside a loop of one iteration whose count XLA cannot
                      fold
  bits_halves_barrier the loop of two halves, with a barrier between the hash and its store
  two_devices         the step data-parallel over two host devices (sharding)
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

VARIANTS = {}


def _arg(name, default):
    return next((type(default)(a.split("=", 1)[1]) for a in sys.argv[1:]
                 if a.startswith(f"--{name}=")), default)


def variant(fn):
    VARIANTS[fn.__name__] = contextlib.contextmanager(fn)
    return fn


@contextlib.contextmanager
def _patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _vanilla_scan(transpose_w=False, stack="rows"):
    """`rnn_kernels.vanilla_scan` (stack="rows": the same program), optionally with W_hh^T
    made once for the backward loop, or with the states stacked feature-major
    (stack="features": (H, T, B), carried through the loops)."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from jax import lax  # pylint: disable=g-import-not-at-top

    from jaxnets.models import rnn_kernels  # pylint: disable=g-import-not-at-top
    rows = stack == "rows"

    @jax.custom_vjp
    def scan(W_hh, h0, xp, mask):
        return fwd(W_hh, h0, xp, mask)[0]

    def fwd(W_hh, h0, xp, mask):
        def step(h, xp_t, keep):
            return jnp.where(keep[:, None], jnp.tanh(h @ W_hh + xp_t), h)

        if rows:
            final, h_prev = lax.scan(lambda h, x: (step(h, *x), h), h0, (xp, mask))
            states = jnp.concatenate([h_prev[1:], final[None]])
        else:
            def body(carry, x):
                h, stack_, t = carry
                stack_ = lax.dynamic_update_slice(stack_, h.T[:, None, :], (0, t, 0))
                return (step(h, *x), stack_, t + 1), None
            T, B, H = xp.shape
            (final, h_prev, _), _ = lax.scan(body, (h0, jnp.zeros((H, T, B), xp.dtype), 0),
                                             (xp, mask))
            states = jnp.concatenate([jnp.moveaxis(h_prev, 0, -1)[1:], final[None]])
        hs = jnp.where(mask[..., None], states, jnp.zeros_like(states))
        return (final, hs), (W_hh, final, h_prev, mask)

    def bwd(residuals, cotangents):
        W_hh, final, h_prev, mask = residuals
        d_final, d_hs = cotangents
        W_t = W_hh.T + 0 if transpose_w else W_hh.T   # + 0: a transposed copy, made once

        def step(d, h, keep, d_h):
            keep = keep[:, None]
            g = jnp.where(keep, d + d_h, jnp.zeros_like(d)) * (1 - h)
            dz = g + g * h
            return jnp.where(keep, jnp.zeros_like(d), d) + dz @ W_t, dz

        if rows:
            def body(carry, x):
                (d, h), (h_before, keep, d_h) = carry, x
                d_before, dz = step(d, h, keep, d_h)
                return (d_before, h_before), dz
            (d_h0, _), dz = lax.scan(body, (d_final, final), (h_prev, mask, d_hs),
                                     reverse=True)
            return rnn_kernels.contract_rows(h_prev, dz), d_h0, dz, None

        def body(carry, x):
            d, h, t = carry
            d_before, dz = step(d, h, *x)
            h_before = lax.dynamic_slice_in_dim(h_prev, t, 1, 1)[:, 0, :].T
            return (d_before, h_before, t - 1), dz
        (d_h0, _, _), dz = lax.scan(body, (d_final, final, mask.shape[0] - 1), (mask, d_hs),
                                    reverse=True)
        d_W = h_prev.reshape(h_prev.shape[0], -1) @ dz.reshape(-1, dz.shape[-1])
        return d_W, d_h0, dz, None

    scan.defvjp(fwd, bwd)
    return scan


def _kernel(**options):
    from jaxnets.models import rnn_kernels  # pylint: disable=g-import-not-at-top
    return _patched(rnn_kernels, "vanilla_scan", _vanilla_scan(**options))


def _step_option(**options):
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    old = runtime_options.step_compiler_options
    return _patched(runtime_options, "step_compiler_options",
                    lambda: {**(old() or {}), **options})


def _bits(one_pass):
    from jaxnets.train import dropout_key  # pylint: disable=g-import-not-at-top
    return _patched(dropout_key, "_written_out_bits", one_pass)


def _hash_all(key, size):
    """dropout_key's bits for the counters 0..size-1, in one pass."""
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from jax import lax  # pylint: disable=g-import-not-at-top

    from jaxnets.train import dropout_key  # pylint: disable=g-import-not-at-top
    return dropout_key._counter_bits(key, lax.iota(jnp.uint32, size))  # pylint: disable=protected-access


def _as_bits(bits, bit_width, shape):
    bits = bits.reshape(shape)
    return bits if bit_width == 32 else bits.astype(f"uint{bit_width}")


@variant
def current():
    yield


@variant
def copy():
    with _kernel():
        yield


@variant
def no_ynn():
    with _step_option(xla_cpu_experimental_ynn_fusion_type=""):
        yield


@variant
def w_transposed():
    with _kernel(transpose_w=True):
        yield


@variant
def chunked_dw():
    import jax  # pylint: disable=g-import-not-at-top

    from jaxnets.models import rnn_kernels  # pylint: disable=g-import-not-at-top

    def chunked(a, b, chunks=8):
        a, b = a.reshape(chunks, -1, a.shape[-1]), b.reshape(chunks, -1, b.shape[-1])
        return jax.lax.dot_general(a, b, (((1,), (1,)), ((0,), (0,)))).sum(0)

    with _patched(rnn_kernels, "contract_rows", chunked):
        yield


@variant
def h_stack_transposed():
    with _kernel(stack="features"):
        yield


@variant
def bits_barrier():
    from jax import lax  # pylint: disable=g-import-not-at-top

    def one_pass(key, bit_width, shape):
        return _as_bits(lax.optimization_barrier(_hash_all(key, math.prod(shape))),
                        bit_width, shape)

    with _bits(one_pass):
        yield


@variant
def bits_loop_of_one():
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from jax import lax  # pylint: disable=g-import-not-at-top

    def one_pass(key, bit_width, shape):
        size = math.prod(shape)
        once = jnp.minimum(key[0], jnp.uint32(0)).astype(jnp.int32) + 1   # 1, unknown to XLA
        bits = lax.fori_loop(0, once, lambda i, bits: _hash_all(key, size),
                             jnp.zeros((size,), jnp.uint32))
        return _as_bits(bits, bit_width, shape)

    with _bits(one_pass):
        yield


@variant
def bits_halves_barrier():
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from jax import lax  # pylint: disable=g-import-not-at-top

    from jaxnets.train import dropout_key  # pylint: disable=g-import-not-at-top

    def halves(key, bit_width, shape):
        size = math.prod(shape)
        half = (size + 1) // 2

        def chunk(i, bits):
            count = lax.iota(jnp.uint32, half) + (i * half).astype(jnp.uint32)
            hashed = dropout_key._counter_bits(key, count)  # pylint: disable=protected-access
            return lax.dynamic_update_slice(bits, lax.optimization_barrier(hashed)[None],
                                            (i, 0))

        bits = lax.fori_loop(0, 2, chunk, jnp.zeros((2, half), jnp.uint32))
        return _as_bits(bits.reshape(-1)[:size], bit_width, shape)

    with _bits(halves):
        yield


@variant
def two_devices():
    from jaxnets.train import config  # pylint: disable=g-import-not-at-top
    resolve = config.resolve
    with _patched(config, "resolve", lambda d: resolve({**d, "num_devices": 2})):
        yield


def main() -> None:
    names = [a for a in sys.argv[1:] if not a.startswith("--")]
    unknown = [n for n in names if n not in VARIANTS]
    if not names or unknown:
        sys.exit(f"rnn_variants.py: name variants among {', '.join(VARIANTS)}"
                 + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if "two_devices" in names:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_force_host_platform_device_count=2")
    import jax  # pylint: disable=g-import-not-at-top

    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    from jaxnets.benchmark import timing, workloads  # pylint: disable=g-import-not-at-top
    runtime_options.tune_host()
    workload = workloads.build("rnn")
    runs = {}
    for name in names:
        with VARIANTS[name]():
            runs[name] = workloads.jax_run(workload)
    if "--check" in sys.argv:
        reference = workloads.jax_run(workload)
        reference.train(3 * reference.steps_per_call)
        want = jax.tree.leaves(reference.state().params)
        for name in runs:
            with VARIANTS[name]():
                fresh = workloads.jax_run(workload)
            fresh.train(3 * fresh.steps_per_call)
            same = all(bool((a == b).all()) for a, b in
                       zip(want, jax.tree.leaves(fresh.state().params)))
            print(f"{name}: parameters after 3 calls "
                  f"{'equal to' if same else 'differ from'} current's, bit for bit")
    k = runs[names[0]].steps_per_call
    load_start = timing.load_average()
    stats = timing.interleaved({n: r.train for n, r in runs.items()},
                               {n: 2 * k for n in runs}, reps=_arg("reps", 7))
    machine = timing.machine()
    print(f"command: python experiments/benchmarks/rnn_variants.py {' '.join(sys.argv[1:])}")
    print(f"{machine['date']}; {machine['cpu']}, {machine['cpu_cores']} cores; load average "
          f"{load_start} at the start, {timing.load_average()} at the end")
    print()
    print(timing.speed_table(stats, workload.batch_size, names[0]))


if __name__ == "__main__":
    main()
