"""The CNN vocabulary of the lecture: CONV, POOL, NORM and FC layers.

A CNN is written as a tuple of layer specs, one per row of the lecture's
table (see `alexnet.py`). The same specs build the Flax module and give the
arithmetic (output volume, parameters, FLOPs) of `jaxnets.conv_arithmetic`,
so the summary table and the model cannot disagree.

Every spec has:
  output_shape(in_shape) -> out_shape     (raises ValueError on a bad layer)
  params(in_shape), flops(in_shape)       (the lecture's counts)
  __call__(x, train=...)                  (inside a compact Flax module)

What a layer computes is fixed by its spec; *how* is chosen per layer and backend
(`impl="auto"`): on the CPU, where XLA's convolution is slow for few channels and for
strides, and its max-pool gradient (select-and-scatter) is slower still, CONV and POOL
run as the same functions written with matrix multiplications and fused elementwise
ops (`kernels.py`: how the layers compute). `impl="xla"` keeps XLA's own ops (the
reference: the summary's FLOP check compiles it, and tests compare both).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnets import conv_arithmetic as ca
from jaxnets.models import kernels


@dataclasses.dataclass(frozen=True)
class Conv:
    """CONV: `features` filters of `window` x `window`, then ReLU.

    With F = window, S = stride, P = padding, K = features on a W1 x H1 x D1 input:
      output  W2 = (W1 - F + 2P)/S + 1, H2 likewise, D2 = K
      params  F*F*D1*K weights + K biases
      FLOPs   H2*W2*F*F*D1*D2 multiply-adds
    `impl` only picks how it is computed: "xla" (nn.Conv, the reference), "auto" (the
    fastest here, `kernels.conv_method`), or a `kernels.conv2d` method: "xla_chunks",
    "rows", "im2col", any of these + "_s2d".
    """

    name: str
    features: int
    window: int
    stride: int = 1
    padding: int = 0
    impl: str = "auto"

    def output_shape(self, in_shape):
        return ca.conv_output_shape(in_shape, self.features, self.window,
                                    self.stride, self.padding, layer=self.name)

    def params(self, in_shape):
        return ca.conv_params(self.window, in_shape[-1], self.features)

    def weights(self, in_shape):
        """params less the K biases: the lecture's (F*F*D1)*K."""
        return ca.conv_weights(self.window, in_shape[-1], self.features)

    def flops(self, in_shape):
        return ca.conv_flops(self.output_shape(in_shape), self.window, in_shape[-1])

    def flops_on_input(self, in_shape):
        return ca.conv_flops_on_input(in_shape, self.features, self.window,
                                      self.stride, self.padding)

    def flax_layer(self, use_bias=True, dtype=None):
        """The layer as Flax's nn.Conv (XLA's convolution): the reference lowering."""
        pad = ((self.padding, self.padding),) * 2
        return nn.Conv(self.features, (self.window, self.window),
                       strides=self.stride, padding=pad, use_bias=use_bias,
                       dtype=dtype, name=self.name)

    def __call__(self, x, *, train, dtype=None):
        if self.impl == "xla":
            return nn.relu(self.flax_layer(dtype=dtype)(x))
        layer = kernels.ConvLayer(self.features, self.window, self.stride, self.padding,
                                  impl=self.impl, dtype=dtype, name=self.name)
        return nn.relu(layer(x))


@dataclasses.dataclass(frozen=True)
class MaxPool:
    """MAX POOL: the largest value in each window; no parameters, no FLOPs counted.

    With F = window, S = stride: W2 = (W1 - F)/S + 1, H2 likewise, D2 = D1.
    `impl` only picks how the max and its gradient are computed (`kernels.max_pool`).
    """

    name: str
    window: int
    stride: int
    impl: str = "auto"   # "auto" = strided slices with a mask gradient; "xla" = reduce_window

    def output_shape(self, in_shape):
        return ca.pool_output_shape(in_shape, self.window, self.stride, layer=self.name)

    def params(self, in_shape):
        return 0

    def flops(self, in_shape):
        return 0

    def __call__(self, x, *, train, dtype=None):
        if self.impl == "xla":
            return nn.max_pool(x, (self.window, self.window),
                               strides=(self.stride, self.stride), padding="VALID")
        return kernels.max_pool(x, self.window, self.stride)


@dataclasses.dataclass(frozen=True)
class LocalResponseNorm:
    """NORM: Krizhevsky et al. (2012), section 3.3, across channels.

    b_c = a_c / (k + alpha * sum_{c' within n/2 of c} a_{c'}^2) ** beta

    alpha multiplies the plain sum (not the mean), as in the paper.
    """

    name: str
    size: int = 5
    k: float = 2.0
    alpha: float = 1e-4
    beta: float = 0.75

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def params(self, in_shape):
        return 0

    def flops(self, in_shape):
        return 0

    def __call__(self, x, *, train, dtype=None):
        half = self.size // 2
        window_sum = jax.lax.reduce_window(
            jnp.square(x), 0.0, jax.lax.add,  # a scalar start keeps it differentiable
            window_dimensions=(1, 1, 1, self.size), window_strides=(1, 1, 1, 1),
            padding=((0, 0), (0, 0), (0, 0), (half, self.size - 1 - half)))
        return x * kernels.inverse_power(self.k + self.alpha * window_sum, self.beta)


@dataclasses.dataclass(frozen=True)
class Dense:
    """FC: a fully connected layer; flattens a volume first.

    params in*out weights + out biases; FLOPs in*out multiply-adds, in = H*W*D.
    `relu` and `dropout` apply to hidden layers only; the last layer gives
    class scores (logits).
    """

    name: str
    features: int
    relu: bool = True
    dropout: float = 0.0

    def output_shape(self, in_shape):
        if not isinstance(self.features, int) or self.features < 1:
            raise ValueError(f"{self.name}: features must be >= 1, got {self.features!r}")
        return (self.features,)

    def params(self, in_shape):
        return ca.dense_params(math.prod(in_shape), self.features)

    def weights(self, in_shape):
        """params less the out biases: in*out."""
        return math.prod(in_shape) * self.features

    def flops(self, in_shape):
        return ca.dense_flops(math.prod(in_shape), self.features)

    flops_on_input = flops

    def flax_layer(self, use_bias=True, dtype=None):
        return nn.Dense(self.features, use_bias=use_bias, dtype=dtype, name=self.name)

    def __call__(self, x, *, train, dtype=None):
        x = self.flax_layer(dtype=dtype)(x.reshape(x.shape[0], -1))
        if self.relu:
            x = nn.relu(x)
        if self.dropout:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return x


class SequentialCNN(nn.Module):
    """A CNN given as a tuple of layer specs, applied in order.

    Attributes:
      layers: the layer specs, one per row of the architecture table.
      input_shape: the (H, W, C) the architecture was designed for; data
        pipelines resize to it and the summary starts from it.
      dtype: computation dtype (params stay float32), e.g. jnp.bfloat16.

    Call with `images: <float>[batch, H, W, C]` and `train` (enables dropout,
    which then needs a 'dropout' RNG); returns `logits: <float>[batch, classes]`.
    """

    layers: tuple
    input_shape: tuple[int, int, int]
    dtype: jnp.dtype | None = None

    def __post_init__(self):
        layer_shapes(self.layers, self.input_shape)  # an impossible shape fails here, at once
        super().__post_init__()

    @nn.compact
    def __call__(self, images, *, train: bool = False):
        x = images
        for layer in self.layers:
            expected = layer.output_shape(x.shape[1:])  # raises on a bad configuration
            x = layer(x, train=train, dtype=self.dtype)
            assert x.shape[1:] == expected, (layer.name, x.shape, expected)
        return x if self.dtype is None else x.astype(jnp.float32)  # scores in float32


def layer_shapes(layers, input_shape):
    """[(layer, in_shape, out_shape)] through the whole network, validated."""
    rows, shape = [], tuple(input_shape)
    for layer in layers:
        out = layer.output_shape(shape)
        rows.append((layer, shape, out))
        shape = out
    return rows


def count_params(layers, input_shape) -> int:
    """The lecture's parameter total for an architecture on `input_shape`."""
    return sum(layer.params(shape) for layer, shape, _ in layer_shapes(layers, input_shape))
