"""How the RNN's loop over time computes, with its gradients written out (models/rnn.py
builds the cells and the layer on them; this module never imports it).

  contract_rows(a, b)   a^T b over all leading axes, without transposed copies
  rows_product(x, W)    x @ W whose gradient for W is contract_rows(x, d)
  masked_update         (carry, output) of one step: padded steps change nothing
  split_scan            the masked time-major scan of any cell's (W_hh, gates, hidden)
  vanilla_scan          the same for the vanilla cell, leaner

Speed: the backward loops do only what must be sequential (the gates' derivative and
d @ W_hh^T per step); dW_hh = sum_t h_{t-1}^T dz_t is then ONE matrix product over all
steps instead of T small ones accumulated inside the loop.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def contract_rows(a, b):
    """a^T b over all leading axes: <[..., M]>, <[..., N]> -> <[M, N]>. Contracting
    dimension 0 of the (rows, M) and (rows, N) views runs without copies; XLA:CPU
    transposes a (T, B, M) stack to (M, T*B) first for the equivalent einsum."""
    rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731  no copy
    return jax.lax.dot_general(rows(a), rows(b), (((0,), (0,)), ((), ())))


# The input projection's product. Its gradient is autodiff's (d @ kernel^T; x^T d), the same
# numbers, but x^T d is `contract_rows` instead of the product XLA:CPU derives from the
# transposed dot, which copied d (T*B x G*H) to (G*H, T*B) first. Measured on the 2-core
# CPU (experiments/benchmarks/rnn_step.md, "Round 11").
@jax.custom_vjp
def rows_product(x, kernel):
    return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))


def _rows_product_fwd(x, kernel):
    return rows_product(x, kernel), (x, kernel)


def _rows_product_bwd(residuals, d):
    x, kernel = residuals
    d_x = jax.lax.dot_general(d, kernel, (((d.ndim - 1,), (1,)), ((), ())))
    return d_x, contract_rows(x, d).astype(kernel.dtype)


rows_product.defvjp(_rows_product_fwd, _rows_product_bwd)


def masked_update(keep, new_carry, carry, h):
    """(carry, output) of one step: the new ones on real steps, the old carry and
    zeros on padded ones."""
    keep = keep[:, None]
    carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
    return carry, jnp.where(keep, h, jnp.zeros_like(h))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def split_scan(gates, hidden, W_hh, params, carry, xp, mask):
    """The masked time-major scan of a `Recurrence`, with the gradient below."""
    return _split_scan_fwd(gates, hidden, W_hh, params, carry, xp, mask)[0]


def _split_scan_fwd(gates, hidden, W_hh, params, carry, xp, mask):
    def body(carry, inputs):
        xp_t, keep = inputs
        hw = hidden(carry) @ W_hh
        new_carry, h = gates(params, carry, xp_t, hw)
        out_carry, out = masked_update(keep, new_carry, carry, h)
        return out_carry, (out, carry, hw)       # keep each step's input carry and hw

    final, (hs, carries, hws) = jax.lax.scan(body, carry, (xp, mask))
    return (final, hs), (W_hh, params, carries, hws, xp, mask)


def _split_scan_bwd(gates, hidden, residuals, cotangents):
    W_hh, params, carries, hws, xp, mask = residuals
    d_final, d_hs = cotangents

    def body(d_carry, inputs):                   # d_carry: cotangent of the carry after t
        carry, hw, xp_t, keep, d_h = inputs
        keep = keep[:, None]
        d_new = jax.tree.map(lambda d: jnp.where(keep, d, 0), d_carry)
        d_out = jnp.where(keep, d_h, 0)
        _, gates_vjp = jax.vjp(lambda p, c, x, w: gates(p, c, x, w), params, carry, xp_t, hw)
        d_params, d_prev, d_xp, d_hw = gates_vjp((d_new, d_out))
        d_prev = jax.tree.map(lambda a, d: a + jnp.where(keep, 0, d), d_prev, d_carry)
        _, hidden_vjp = jax.vjp(hidden, carry)   # route dh_{t-1} = d_hw W_hh^T into the carry
        d_prev = jax.tree.map(jnp.add, d_prev, hidden_vjp(d_hw @ W_hh.T)[0])
        return d_prev, (d_params, d_xp, d_hw)

    d_carry0, (d_params, d_xp, d_hw) = jax.lax.scan(
        body, d_final, (carries, hws, xp, mask, d_hs), reverse=True)
    h_prev = jax.vmap(hidden)(carries)            # (T, B, H): h_{t-1} of every step
    d_W = jnp.einsum("tbh,tbg->hg", h_prev, d_hw)  # one GEMM over all T*B rows
    d_params = jax.tree.map(lambda d: d.sum(0), d_params)
    return d_W, d_params, d_carry0, d_xp, None


split_scan.defvjp(_split_scan_fwd, _split_scan_bwd)


# The vanilla cell's scan. Measured on the 2-core CPU (experiments/benchmarks/rnn_step.md),
# against `split_scan` running the same cell, in one process: the training step of the
# benchmark's RNN 1.18-1.20x the examples/s (~11-14% less CPU time under load), mostly
# from the dW_hh product (the einsum over "tbh,tbg" made XLA:CPU copy both (T, B, H)
# stacks into (H, T*B) layouts first and then ran a K = T*B GEMM at half the speed of a
# square one) and from the backward loop (one output stack instead of two identical
# ones, no tanh recomputed). Unrolling the
# loops (lax.scan unroll=2, 4, 8) measured no faster on the CPU: the loop's own overhead
# is ~2 us of a ~30 us step there; the 64x128 @ 128x128 product is the step. Not
# measured on a GPU (none was at hand); the same form is used on every backend.
@jax.custom_vjp
def vanilla_scan(W_hh, h0, xp, mask):
    """rnn.masked_scan_time_major of the vanilla cell: h_t = tanh(h_{t-1} W_hh + xp_t)."""
    return _vanilla_scan_fwd(W_hh, h0, xp, mask)[0]


def _vanilla_scan_fwd(W_hh, h0, xp, mask):
    def body(h, inputs):
        xp_t, keep = inputs
        new = jnp.tanh(h @ W_hh + xp_t)               # rnn._vanilla_gates, the same operations
        return jnp.where(keep[:, None], new, h), h     # the state after t; keep the one before
    final, h_prev = jax.lax.scan(body, h0, (xp, mask))
    states = jnp.concatenate([h_prev[1:], final[None]])   # the state after each step
    hs = jnp.where(mask[..., None], states, jnp.zeros_like(states))
    return (final, hs), (W_hh, final, h_prev, mask)


def _vanilla_scan_bwd(residuals, cotangents):
    W_hh, final, h_prev, mask = residuals
    d_final, d_hs = cotangents

    def body(carry, inputs):
        d, h = carry                # dL/d(state after t), the state after t (tanh there)
        h_before, keep, d_h = inputs
        keep = keep[:, None]
        g = jnp.where(keep, d + d_h, jnp.zeros_like(d)) * (1 - h)
        dz = g + g * h              # d tanh as JAX's own derivative of tanh computes it
        d_before = jnp.where(keep, jnp.zeros_like(d), d) + dz @ W_hh.T
        return (d_before, h_before), dz

    (d_h0, _), dz = jax.lax.scan(body, (d_final, final), (h_prev, mask, d_hs), reverse=True)
    return contract_rows(h_prev, dz), d_h0, dz, None


vanilla_scan.defvjp(_vanilla_scan_fwd, _vanilla_scan_bwd)
