"""The key a Flax model's dropout draws from: JAX's threefry, bit for bit, faster on the CPU.

`dropout_key(raw)` wraps the step's raw threefry key (uint32[2]) in a PRNG implementation
that is threefry's own seed, split and fold_in, and whose random bits are the same
Threefry-2x32 hash (20 rounds) of the same counters, written out as one elementwise
expression. On the CPU, JAX lowers threefry's hash as a rolled loop of 5 iterations, each a
pass over two arrays of the whole mask's size; here the 20 rounds run on each value at
once, in a loop of two halves. Every mask, and every number a run computes, is unchanged
(tests/test_dropout_key.py: the bits, and training with either key, bit for bit); other
backends use threefry's own lowering.

Measured on the 2-core CPU (experiments/benchmarks/rnn_step.md, round 11): the rnn
workload's step 1.06x the examples/s (its embedding dropout draws 64 x 200 x 64 values
a step).
"""

from __future__ import annotations

import math

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
from jax import lax

_THREEFRY = jax.extend.random.threefry_prng_impl
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))   # Threefry-2x32's, as JAX's threefry2x32_p


def _rotate_left(x, r):
    return lax.shift_left(x, np.uint32(r)) | lax.shift_right_logical(x, np.uint32(32 - r))


def _hash_2x32(k1, k2, x0, x1):
    """Threefry-2x32, 20 rounds (5 groups of 4, a key injection after each)."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotate_left(x1, r)
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _counter_bits(key, count):
    """threefry's 32 bits for each 64-bit counter (0, count): the hash's two words xor-ed."""
    x0, x1 = _hash_2x32(key[0], key[1], jnp.zeros_like(count), count)
    return x0 ^ x1


def _written_out_bits(key, bit_width, shape):
    """threefry's bits under jax_threefry_partitionable: element i (row-major) hashes the
    64-bit counter (0, i); the result is the two output words xor-ed, truncated to
    bit_width.

    The hash runs inside a loop over two halves of the counters, which writes the bits
    out, as threefry's rolled loop does: XLA cannot fuse the hash into the bits' users.
    Written out without the loop, it was fused into each user (the forward and the
    backward of dropout), and the users' float arithmetic came out arranged differently:
    a run's numbers moved in the last bits (tests/test_dropout_key.py)."""
    size = math.prod(shape)
    half = (size + 1) // 2

    def chunk(i, bits):
        count = lax.iota(jnp.uint32, half) + (i * half).astype(jnp.uint32)
        return lax.dynamic_update_slice(bits, _counter_bits(key, count)[None], (i, 0))

    bits = lax.fori_loop(0, 2, chunk, jnp.zeros((2, half), jnp.uint32))
    bits = bits.reshape(-1)[:size].reshape(shape)
    return bits if bit_width == 32 else bits.astype(f"uint{bit_width}")


def _random_bits(key, bit_width, shape):
    if (not jax.config.jax_threefry_partitionable or bit_width not in (8, 16, 32)
            or not shape or not 0 < math.prod(shape) < 2 ** 32):
        return _THREEFRY.random_bits(key, bit_width, shape)  # the cases written out differ
    return lax.platform_dependent(
        key, cpu=lambda k: _written_out_bits(k, bit_width, shape),
        default=lambda k: _THREEFRY.random_bits(k, bit_width, shape))


THREEFRY_WRITTEN_OUT = jax.extend.random.define_prng_impl(
    key_shape=_THREEFRY.key_shape, seed=_THREEFRY.seed, split=_THREEFRY.split,
    random_bits=_random_bits, fold_in=_THREEFRY.fold_in, name="threefry_written_out",
    tag="fry_w")


def dropout_key(key):
    """A raw threefry key (uint32[2]) as a typed key of THREEFRY_WRITTEN_OUT; a typed key
    (its implementation chosen by whoever made it) as it is."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key, impl=THREEFRY_WRITTEN_OUT)
