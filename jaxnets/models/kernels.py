"""How the CNN layers compute: faster functions for what XLA's own ops compute.

The layer specs of `cnn.py` fix *what* a layer computes; this module is *how*, per
backend. `conv2d` equals `jax.lax.conv_general_dilated` (NHWC, HWIO, symmetric zero
padding) by every method; `max_pool` equals a VALID `reduce_window` max, and its
gradient is a subgradient (tied maxima share dy, see `_tap_shares`); `inverse_power`
is `d ** -beta`. tests/test_benchmark.py checks each against XLA's op, gradients
included. This module never imports `cnn.py`.

Measured on the 2-core CPU (experiments/benchmarks/speedups.md has the numbers):
XLA's CPU convolution goes to a fast library (YNNPACK) only for enough channels
and stride 1, its max-pool gradient (select-and-scatter) is ~10x slower than a
masked copy, and its GEMMs run near the machine's peak. So on the CPU:
  * a conv with many channels (AlexNet's) stays XLA's, run on slices of the batch
    whose outputs fit the cache (`_conv_in_batch_chunks`): AlexNet training +7%
    (CONV1 alone: forward + backward 79 ms as space-to-depth + one im2col GEMM, the
    lecture's matrix-multiplication slide, 42 ms as 16 one-example convs);
  * a conv with few channels becomes ONE matrix multiplication by "row Toeplitz"
    matrices: each output row is K input rows times a banded matrix built from
    the kernel (im2col along the height, the kernel unrolled along the width);
  * max pooling is a max of strided slices (a reduction over the reshaped windows
    where they tile the input, as LeNet's 2x2/2: computed once, not again inside
    each consumer); its gradient goes, tap by tap, to the inputs equal to their
    window's max, shared equally where they tie (`_tap_shares`).
On a GPU, XLA's (cuDNN's) convs are fast, with one exception: a strided conv on few
channels (CONV1 on RGB) leaves the tensor cores idle, and its space-to-depth twin
runs 1.56x faster (AlexNet training, H200, experiments/benchmarks/gpu/). Max pooling
as strided slices is faster there too (37.1k vs 34.2k examples/s with XLA's pool).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


# -- CONV -------------------------------------------------------------------------

class ConvLayer(nn.Module):
    """A convolution with nn.Conv's parameters ('kernel' [K, K, C, F], 'bias' [F]),
    computed by `conv2d` with the fastest method for the backend."""

    features: int
    window: int
    stride: int = 1
    padding: int = 0
    impl: str = "auto"
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.window, self.window, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        dtype = self.dtype or jnp.result_type(x, kernel)
        x, kernel, bias = (a.astype(dtype) for a in (x, kernel, bias))
        return conv2d(x, kernel, self.stride, self.padding, self.impl) + bias


def conv2d(x, kernel, stride: int = 1, padding: int = 0, impl: str = "auto"):
    """`<[B, H, W, C]> * <[K, K, C, F]> -> <[B, O, O2, F]>`, XLA's convolution
    (cross-correlation, zero padding on both sides), by the method `impl`."""
    if impl == "auto":
        impl = conv_method(x.shape, kernel.shape, stride, padding)
    if impl == "xla":
        return jax.lax.conv_general_dilated(
            x, kernel, (stride, stride), ((padding, padding),) * 2,
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if impl == "xla_chunks":
        return _conv_in_batch_chunks(x, kernel, stride, padding)
    if impl.endswith("_s2d"):
        return _space_to_depth_conv(x, kernel, stride, padding, impl.removesuffix("_s2d"))
    if impl not in _STRIDE_1 or stride != 1:
        raise ValueError(f"conv impl {impl!r} with stride {stride}: use auto, xla, "
                         f"{', '.join(_STRIDE_1)} (stride 1), or one of them + '_s2d'")
    return _STRIDE_1[impl](x, kernel, padding)


def conv_method(x_shape, kernel_shape, stride: int, padding: int) -> str:
    """The `conv2d` method the measurements favour for these shapes on this backend."""
    window, _, channels, features = kernel_shape
    if jax.default_backend() != "cpu":
        # Tensor cores multiply channels in blocks of 8-16: a strided conv on 3 channels
        # wastes most of them, its space-to-depth twin has S*S*3 (AlexNet CONV1: 48).
        # H200, bf16, batch 1024: AlexNet training 37.0k -> 57.6k examples/s.
        return "xla_s2d" if stride > 1 and channels < 16 else "xla"
    width = x_shape[2] + 2 * padding
    s2d = stride > 1
    if s2d:  # the stride-1 conv it becomes
        channels, window = channels * stride * stride, -(-window // stride)
        width = -(-width // stride)
    if _rows_pay(width, channels, window, features):
        return "rows_s2d" if s2d else "rows"
    # Otherwise XLA's (YNNPACK's) conv, strided too, on batch slices sized for the cache.
    return "xla_chunks"


def _rows_pay(width: int, channels: int, window: int, features: int) -> bool:
    """Row Toeplitz wins where XLA's conv is slow (few channels) and its banded
    matrix stays small: it multiplies width/window times the conv's useful work."""
    out = width - window + 1
    return channels < 16 and width <= 8 * window and \
        window * width * channels * out * features <= 1 << 21


CHUNK_OUTPUT_BYTES = 2 << 20
MAX_CHUNKS = 16


def _conv_in_batch_chunks(x, kernel, stride: int, padding: int):
    """XLA's conv on slices of the batch whose outputs are at most ~2 MiB each.

    XLA:CPU's conv library (YNNPACK) slows down once a conv's output outgrows the cache:
    AlexNet CONV1 at batch 16 (19 MB out) takes 3.2 ms per example, one example at a
    time 1.25 ms; forward + backward 124 -> 42 ms (experiments/benchmarks/speedups.md).
    """
    batch = x.shape[0]
    out_h = (x.shape[1] + 2 * padding - kernel.shape[0]) // stride + 1
    out_w = (x.shape[2] + 2 * padding - kernel.shape[1]) // stride + 1
    per_example = out_h * out_w * kernel.shape[3] * x.dtype.itemsize
    chunk = max(1, -(-batch // MAX_CHUNKS), min(batch, CHUNK_OUTPUT_BYTES // per_example))
    # Unrolled slices, not lax.map: XLA:CPU runs the backward of a mapped conv as a loop
    # ~3x slower than the whole-batch conv; at most MAX_CHUNKS keeps compiling short.
    parts = [conv2d(x[i:i + chunk], kernel, stride, padding, "xla")
             for i in range(0, batch, chunk)]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts)


def _space_to_depth_conv(x, kernel, stride: int, padding: int, core: str):
    """A stride-S conv as a stride-1 conv on S x S blocks of pixels stacked as channels.

    Input [B, H, W, C] -> [B, H'/S, W'/S, S*S*C]; kernel [K, K, C, F] zero-padded to
    K' = ceil(K/S)*S -> [K'/S, K'/S, S*S*C, F]. Output position o still reads input
    rows o*S .. o*S+K-1; the padded taps multiply zeros.
    """
    window, _, channels, features = kernel.shape
    batch, height, width, _ = x.shape
    s, kp = stride, -(-window // stride) * stride
    out_h = (height + 2 * padding - window) // s + 1
    out_w = (width + 2 * padding - window) // s + 1

    def padded(size, out):  # a multiple of S covering every tap of every output
        return -(-max(size + 2 * padding, s * (out - 1) + kp) // s) * s

    hp, wp = padded(height, out_h), padded(width, out_w)
    x = jnp.pad(x, ((0, 0), (padding, hp - height - padding),
                    (padding, wp - width - padding), (0, 0)))
    x = x.reshape(batch, hp // s, s, wp // s, s, channels).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(batch, hp // s, wp // s, s * s * channels)
    k = jnp.pad(kernel, ((0, kp - window), (0, kp - window), (0, 0), (0, 0)))
    k = k.reshape(kp // s, s, kp // s, s, channels, features).transpose(0, 2, 1, 3, 4, 5)
    k = k.reshape(kp // s, kp // s, s * s * channels, features)
    y = conv2d(x, k, 1, 0, core)
    return y[:, :out_h, :out_w, :]


def _row_toeplitz_conv(x, kernel, padding: int):
    """A stride-1 conv as one GEMM: [B*O, K*W*C] rows times a [K*W*C, O2*F] matrix.

    Row o of the output (all O2 positions, all F filters) is the K input rows
    o..o+K-1, flattened, times T, where T[i, (p, c), (q, f)] = kernel[i, p-q, c, f]
    (zero unless 0 <= p-q < K): the kernel unrolled along the width.
    """
    window, _, channels, features = kernel.shape
    x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    batch, height, width, _ = x.shape
    out_h, out_w = height - window + 1, width - window + 1
    shift = np.zeros((width, out_w, window), kernel.dtype)  # shift[p, q, j] = [p == q + j]
    for j in range(window):
        shift[np.arange(out_w) + j, np.arange(out_w), j] = 1
    toeplitz = jnp.einsum("ijcf,pqj->ipcqf", kernel, shift)   # (K, W, C, O2, F)
    toeplitz = toeplitz.reshape(window * width * channels, out_w * features)
    flat = x.reshape(batch, height, width * channels)
    rows = jnp.concatenate([flat[:, i:i + out_h] for i in range(window)], axis=-1)
    y = rows.reshape(batch * out_h, -1) @ toeplitz                # (B*O, O2*F)
    return y.reshape(batch, out_h, out_w, features)


def _im2col_conv(x, kernel, padding: int):
    """A stride-1 conv as one GEMM: [B*O*O2, K*K*C] patches times the [K*K*C, F] kernel."""
    window, _, channels, features = kernel.shape
    x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    x = jax.lax.optimization_barrier(x)  # computed once, not again inside each of the K*K slices
    batch, height, width, _ = x.shape
    out_h, out_w = height - window + 1, width - window + 1
    patches = jnp.concatenate([x[:, i:i + out_h, j:j + out_w] for i in range(window)
                               for j in range(window)], axis=-1)      # (B, O, O2, K*K*C)
    y = patches.reshape(-1, window * window * channels) @ kernel.reshape(-1, features)
    return y.reshape(batch, out_h, out_w, features)


_STRIDE_1 = {"rows": _row_toeplitz_conv, "im2col": _im2col_conv}


# -- POOL -------------------------------------------------------------------------

def _pool_taps(x, window: int, stride: int):
    """[((i, j), x[:, i::stride, j::stride] cut to the output size)] for every tap."""
    out_h = (x.shape[1] - window) // stride + 1
    out_w = (x.shape[2] - window) // stride + 1
    return [((i, j), x[:, i:i + stride * (out_h - 1) + 1:stride,
                       j:j + stride * (out_w - 1) + 1:stride]) for i in range(window)
            for j in range(window)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x, window: int, stride: int):
    """`<[B, H, W, C]> -> <[B, O, O2, C]>`: the max of each window (no padding)."""
    batch, height, width, channels = x.shape
    if _tiles(x.shape, window, stride):
        return x.reshape(batch, height // stride, stride, width // stride, stride,
                         channels).max(axis=(2, 4))
    return functools.reduce(jnp.maximum, (tap for _, tap in _pool_taps(x, window, stride)))


def _tiles(shape, window: int, stride: int) -> bool:
    """True when the pooling windows tile the input exactly (LeNet's 2x2/2 on 28x28)."""
    return window == stride and shape[1] % stride == 0 and shape[2] % stride == 0


def _max_pool_fwd(x, window, stride):
    y = max_pool(x, window, stride)
    return y, (x, y)


def _max_pool_bwd(window, stride, residuals, dy):
    x, y = residuals
    _, height, width, _ = x.shape
    zero = jnp.zeros((), x.dtype)
    shares = _tap_shares(x, y, dy, window, stride)
    if _tiles(x.shape, window, stride):
        # Windows tile the input (LeNet's 2x2/2): each input row/column belongs to one
        # tap, so the taps' shares interleave (stack + reshape) instead of pad + add.
        rows = [jnp.stack([shares[i, j] for j in range(stride)], axis=3) for i in range(stride)]
        return (jnp.stack(rows, axis=2).reshape(x.shape),)
    dx = jnp.zeros_like(x)
    for (i, j), grad in shares.items():  # each tap's share, put back in place
        end_h = height - i - stride * (y.shape[1] - 1) - 1
        end_w = width - j - stride * (y.shape[2] - 1) - 1
        dx = dx + jax.lax.pad(grad, zero, ((0, 0, 0), (i, end_h, stride - 1),
                                           (j, end_w, stride - 1), (0, 0, 0)))
    return (dx,)


def _tap_shares(x, y, dy, window: int, stride: int) -> dict:
    """{(i, j): the part of dy that tap (i, j) of each window receives}: the inputs
    equal to the window's max share its dy equally, the others get nothing.

    The max's derivative is dy once per window, not once per tied input. Ties are
    common: over a constant region (an image's background, zero padding) every conv
    output equals its bias, and a positive bias passes the ReLU, so whole windows tie.
    XLA's select-and-scatter gives all of dy to the first tied input instead; both are
    subgradients, and where the ties come from a constant region the tied inputs have
    the same receptive field, so the parameters get the same gradient either way.
    Measured, training steps interleaved (every tie getting all of dy -> split ->
    first tie only): LeNet 3.68 -> 3.72 -> 3.94 ms, AlexNet 355 -> 360 -> 365 ms. The
    divide keeps `share` one array made once (XLA does not copy an expensive op into
    each tap's consumer), where a first-tie mask was recomputed for every tap.
    """
    zero = jnp.zeros((), x.dtype)
    taps = _pool_taps(x, window, stride)
    # counted in int32: bf16 counts no further than 256 exactly (a 17x17 window's 289)
    ties = functools.reduce(jnp.add, [(tap == y).astype(jnp.int32) for _, tap in taps])
    share = (dy.astype(jnp.float32) / ties).astype(dy.dtype)
    return {ij: jnp.where(tap == y, share, zero) for ij, tap in taps}


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


# -- NORM -------------------------------------------------------------------------

def inverse_power(d, beta: float):
    """d ** -beta; the paper's beta = 0.75 as rsqrt(d) * sqrt(rsqrt(d)), two cheap
    instructions instead of exp(-beta * log(d)): AlexNet's NORM layers forward +
    backward 4x faster on the CPU."""
    if beta == 0.75:
        r = jax.lax.rsqrt(d)
        return r * jnp.sqrt(r)
    return d ** -beta
