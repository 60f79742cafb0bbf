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
                     (a `Recurrence`: the matmul h @ W_hh, then elementwise gates)
  initial_carry(h0)  the carry whose hidden state is h0 (<[B, H]>)
  hidden(carry)      the hidden state h of a carry (a static, pure function)

Speed: the scan runs time-major, with its gradient written out (models/rnn_kernels.py:
`split_scan`, and the vanilla cell's leaner `vanilla_scan`). Every cell's input
projection is nn.Dense whose product has the same kind of gradient for dW_xh
(`rnn_kernels.rows_product`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.models import rnn_kernels

_recurrent_init = nn.initializers.orthogonal()


class Recurrence(NamedTuple):
    """One step of a cell, split where the loop can use it:

        hw = hidden(carry) @ W_hh                   (the only matmul of a step)
        carry, h_t = gates(params, carry, xp_t, hw) (elementwise)

    Called as `step(carry, xp_t) -> (carry, h_t)` it is the plain step.
    """

    W_hh: jax.Array
    params: Any              # what `gates` needs besides W_hh (a pytree; () for most)
    gates: Callable
    hidden: Callable

    def __call__(self, carry, xp):
        return self.gates(self.params, carry, xp, self.hidden(carry) @ self.W_hh)


def _projection(features: int, dtype, **kwargs) -> nn.Dense:
    """A cell's W_xh x + b, for every step at once: nn.Dense (its parameters, their
    initializers and names unchanged), with a product whose gradient is written out."""
    return nn.Dense(features, dtype=dtype, name="W_xh", dot_general=_projection_dot_general,
                    **kwargs)


def _projection_dot_general(x, kernel, dimension_numbers, precision=None,
                            preferred_element_type=None):
    """nn.Dense's x @ kernel through `rnn_kernels.rows_product`."""
    if (dimension_numbers != (((x.ndim - 1,), (0,)), ((), ())) or precision is not None
            or preferred_element_type is not None):
        raise ValueError(f"_projection_dot_general: nn.Dense's plain product expected, got "
                         f"{dimension_numbers}, precision={precision}, "
                         f"preferred_element_type={preferred_element_type}")
    return rnn_kernels.rows_product(x, kernel)


class VanillaCell(nn.Module):
    """The lecture's cell: h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)."""

    hidden_size: int
    dtype: Any = None        # computation dtype (e.g. jnp.bfloat16); params stay float32

    def setup(self):
        self.W_xh = _projection(self.hidden_size, self.dtype)  # its bias is b
        self.W_hh = self.param("W_hh", _recurrent_init, (self.hidden_size,) * 2)

    def project(self, x):
        return self.W_xh(x)

    def recurrence(self):
        return Recurrence(_cast(self.W_hh, self.dtype), (), _vanilla_gates, self.hidden)

    def initial_carry(self, h0):
        return h0

    @staticmethod
    def hidden(carry):
        return carry


def _vanilla_gates(params, h, xp, hw):
    h = jnp.tanh(hw + xp)           # h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)
    return h, h


class LSTMCell(nn.Module):
    """Long short-term memory (Hochreiter & Schmidhuber 1997); carry (c, h)."""

    hidden_size: int
    dtype: Any = None

    def setup(self):
        self.W_xh = _projection(4 * self.hidden_size, self.dtype, bias_init=self._bias_init)
        self.W_hh = self.param("W_hh", _recurrent_init, (self.hidden_size, 4 * self.hidden_size))

    def _bias_init(self, key, shape, dtype=jnp.float32):
        # forget-gate bias 1: remember by default (Jozefowicz et al. 2015)
        return jnp.zeros(shape, dtype).at[self.hidden_size:2 * self.hidden_size].set(1.0)

    def project(self, x):
        return self.W_xh(x)

    def recurrence(self):
        return Recurrence(_cast(self.W_hh, self.dtype), (), _lstm_gates, self.hidden)

    def initial_carry(self, h0):
        return (jnp.zeros_like(h0), h0)

    @staticmethod
    def hidden(carry):
        return carry[1]


def _lstm_gates(params, carry, xp, hw):
    c, _ = carry
    i, f, g, o = jnp.split(xp + hw, 4, axis=-1)
    c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
    h = nn.sigmoid(o) * jnp.tanh(c)
    return (c, h), h


class GRUCell(nn.Module):
    """Gated recurrent unit (Cho et al. 2014), reset gate applied after W_hh h."""

    hidden_size: int
    dtype: Any = None

    def setup(self):
        self.W_xh = _projection(3 * self.hidden_size, self.dtype)
        self.W_hh = self.param("W_hh", _recurrent_init, (self.hidden_size, 3 * self.hidden_size))
        self.b_hn = self.param("b_hn", nn.initializers.zeros, (self.hidden_size,))

    def project(self, x):
        return self.W_xh(x)

    def recurrence(self):
        return Recurrence(_cast(self.W_hh, self.dtype), _cast(self.b_hn, self.dtype),
                          _gru_gates, self.hidden)

    def initial_carry(self, h0):
        return h0

    @staticmethod
    def hidden(carry):
        return carry


def _gru_gates(b_hn, h, xp, hw):
    x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(hw, 3, axis=-1)
    r, z = nn.sigmoid(x_r + h_r), nn.sigmoid(x_z + h_z)
    h = (1.0 - z) * jnp.tanh(x_n + r * (h_n + b_hn)) + z * h
    return h, h


CELLS = {"vanilla": VanillaCell, "lstm": LSTMCell, "gru": GRUCell}


def _cast(a, dtype):
    return a if dtype is None else a.astype(dtype)


_SIZES = ("vocab_size", "source_vocab_size", "target_vocab_size", "num_classes", "embed_dim",
          "hidden_size")
_RATES = ("dropout", "embed_dropout")


def check_fields(module: nn.Module) -> None:
    """Raises a ValueError naming a field of an RNN module that cannot work (an unknown
    cell, a size below 1, a dropout rate outside [0, 1)), when the module is made
    rather than deep inside its first call."""
    for name in _SIZES:
        value = getattr(module, name, 1)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: must be a positive integer")
    for name in _RATES:
        value = getattr(module, name, 0.0)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}={value!r}: must be a dropout rate in [0, 1)")
    _check_cell(getattr(module, "cell", "vanilla"))


def _check_cell(kind: str) -> None:
    if kind not in CELLS:
        raise ValueError(f"unknown cell {kind!r}; choose one of: {', '.join(CELLS)}")


def make_cell(kind: str, hidden_size: int, name: str = "cell", dtype=None) -> nn.Module:
    _check_cell(kind)
    return CELLS[kind](hidden_size, dtype=dtype, name=name)


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
    carry, hs = masked_scan_time_major(step, carry, jnp.swapaxes(xp, 0, 1), mask.T)
    return carry, jnp.swapaxes(hs, 0, 1)


def masked_scan_time_major(step, carry, xp, mask):
    """`masked_scan` on <[T, B, G*H]> inputs and a <bool>[T, B] mask; hs is <[T, B, H]>.

    A `Recurrence` runs with the hand-written gradient of `rnn_kernels.split_scan` (the
    vanilla cell: `vanilla_scan`); any other
    step function through plain `lax.scan` and autodiff.
    """
    if isinstance(step, Recurrence):
        if step.gates is _vanilla_gates:
            return rnn_kernels.vanilla_scan(step.W_hh, carry, xp, mask)
        return rnn_kernels.split_scan(step.gates, step.hidden, step.W_hh, step.params, carry,
                                      xp, mask)

    def body(carry, inputs):
        xp_t, keep = inputs                       # (B, G*H), (B,)
        new_carry, h = step(carry, xp_t)
        return rnn_kernels.masked_update(keep, new_carry, carry, h)

    return jax.lax.scan(body, carry, (xp, mask))


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
    dtype: Any = None        # computation dtype; params stay float32

    def __post_init__(self):
        check_fields(self)
        super().__post_init__()

    def setup(self):
        self.step_cell = make_cell(self.cell, self.hidden_size, dtype=self.dtype)

    def __call__(self, x, mask, carry=None):
        if carry is None:
            carry = self.zero_carry(x.shape[0], x.dtype)
        xp = self.step_cell.project(jnp.swapaxes(x, 0, 1))  # hoisted out of the scan; (T, B, G*H)
        carry, hs = masked_scan_time_major(self.step_cell.recurrence(), carry, xp, mask.T)
        return carry, jnp.swapaxes(hs, 0, 1)

    def zero_carry(self, batch_size: int, dtype=jnp.float32):
        return self.step_cell.initial_carry(jnp.zeros((batch_size, self.hidden_size), dtype))

    def carry_from_hidden(self, h0):
        return self.step_cell.initial_carry(h0)

    def hidden(self, carry):
        return self.step_cell.hidden(carry)
