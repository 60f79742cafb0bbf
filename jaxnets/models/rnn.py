"""Recurrent cells and the loop over time, as in the lecture.

    h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)        y_t = W_hy h_t

A cell is one time step; the loop over time is `jax.lax.scan`, so the same
weights serve every step whatever the sequence length. Because `W_xh x_t + b`
does not depend on h, it is computed for all steps at once before the scan
(one large matmul instead of T small ones); only `W_hh h_{t-1}` stays inside.

Padded steps (mask 0) leave the state unchanged and output zeros, so a
padded batch gives each sequence exactly the outputs and final state it
would have alone.

Every cell offers:
  project(x)         <[..., D]> -> <[..., G*H]>  the input part, W_xh x + b
  recurrence()       a pure step(carry, xp_t) -> (carry, h_t) over the weights
  initial_carry(h0)  the carry whose hidden state is h0 (<[B, H]>)
  hidden(carry)      the hidden state h of a carry (a static, pure function)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_recurrent_init = nn.initializers.orthogonal()


class VanillaCell(nn.Module):
    """The lecture's cell: h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)."""

    hidden_size: int

    def setup(self):
        self.W_xh = nn.Dense(self.hidden_size, name="W_xh")  # its bias is b
        self.W_hh = self.param("W_hh", _recurrent_init, (self.hidden_size,) * 2)

    def project(self, x):
        return self.W_xh(x)

    def recurrence(self):
        W_hh = self.W_hh

        def step(h, xp):
            h = jnp.tanh(h @ W_hh + xp)
            return h, h

        return step

    def initial_carry(self, h0):
        return h0

    @staticmethod
    def hidden(carry):
        return carry


class LSTMCell(nn.Module):
    """Long short-term memory (Hochreiter & Schmidhuber 1997); carry (c, h)."""

    hidden_size: int

    def setup(self):
        self.W_xh = nn.Dense(4 * self.hidden_size, name="W_xh", bias_init=self._bias_init)
        self.W_hh = self.param("W_hh", _recurrent_init, (self.hidden_size, 4 * self.hidden_size))

    def _bias_init(self, key, shape, dtype=jnp.float32):
        # forget-gate bias 1: remember by default (Jozefowicz et al. 2015)
        return jnp.zeros(shape, dtype).at[self.hidden_size:2 * self.hidden_size].set(1.0)

    def project(self, x):
        return self.W_xh(x)

    def recurrence(self):
        W_hh = self.W_hh

        def step(carry, xp):
            c, h = carry
            i, f, g, o = jnp.split(xp + h @ W_hh, 4, axis=-1)
            c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
            h = nn.sigmoid(o) * jnp.tanh(c)
            return (c, h), h

        return step

    def initial_carry(self, h0):
        return (jnp.zeros_like(h0), h0)

    @staticmethod
    def hidden(carry):
        return carry[1]


class GRUCell(nn.Module):
    """Gated recurrent unit (Cho et al. 2014), reset gate applied after W_hh h."""

    hidden_size: int

    def setup(self):
        self.W_xh = nn.Dense(3 * self.hidden_size, name="W_xh")
        self.W_hh = self.param("W_hh", _recurrent_init, (self.hidden_size, 3 * self.hidden_size))
        self.b_hn = self.param("b_hn", nn.initializers.zeros, (self.hidden_size,))

    def project(self, x):
        return self.W_xh(x)

    def recurrence(self):
        W_hh, b_hn = self.W_hh, self.b_hn

        def step(h, xp):
            x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(h @ W_hh, 3, axis=-1)
            r, z = nn.sigmoid(x_r + h_r), nn.sigmoid(x_z + h_z)
            h = (1.0 - z) * jnp.tanh(x_n + r * (h_n + b_hn)) + z * h
            return h, h

        return step

    def initial_carry(self, h0):
        return h0

    @staticmethod
    def hidden(carry):
        return carry


CELLS = {"vanilla": VanillaCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(kind: str, hidden_size: int, name: str = "cell") -> nn.Module:
    try:
        return CELLS[kind](hidden_size, name=name)
    except KeyError:
        raise ValueError(
            f"unknown cell {kind!r}; choose one of: {', '.join(CELLS)}") from None


def masked_scan(step, carry, xp, mask):
    """Run `step` over time with `jax.lax.scan`; padded steps change nothing.

    Args:
      step: pure `(carry, xp_t) -> (carry, h_t)` from `cell.recurrence()`.
      carry: initial carry for a batch of B sequences.
      xp: <float>[B, T, G*H] projected inputs.
      mask: <bool>[B, T], True on real steps.

    Returns:
      (carry, hs): the carry after each sequence's last real step, and
      <float>[B, T, H] hidden states, zero on padded steps.
    """

    def body(carry, inputs):
        xp_t, keep = inputs                       # (B, G*H), (B,)
        new_carry, h = step(carry, xp_t)
        keep = keep[:, None]
        carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
        return carry, jnp.where(keep, h, jnp.zeros_like(h))

    carry, hs = jax.lax.scan(body, carry, (jnp.swapaxes(xp, 0, 1), mask.T))
    return carry, jnp.swapaxes(hs, 0, 1)


def length_mask(lengths, max_length: int):
    """<bool>[B, T]: True for the first lengths[b] steps of each row."""
    return jnp.arange(max_length)[None, :] < lengths[:, None]


class RNN(nn.Module):
    """A cell run over a (padded) batch of sequences.

    Call with `x: <float>[B, T, D]`, `mask: <bool>[B, T]` and optionally an
    initial carry; returns (final carry, hidden states <float>[B, T, H]).
    """

    hidden_size: int
    cell: str = "vanilla"

    def setup(self):
        self.step_cell = make_cell(self.cell, self.hidden_size)

    def __call__(self, x, mask, carry=None):
        if carry is None:
            carry = self.zero_carry(x.shape[0], x.dtype)
        xp = self.step_cell.project(x)             # hoisted out of the scan
        return masked_scan(self.step_cell.recurrence(), carry, xp, mask)

    def zero_carry(self, batch_size: int, dtype=jnp.float32):
        return self.step_cell.initial_carry(jnp.zeros((batch_size, self.hidden_size), dtype))

    def carry_from_hidden(self, h0):
        return self.step_cell.initial_carry(h0)

    def hidden(self, carry):
        return self.step_cell.hidden(carry)
