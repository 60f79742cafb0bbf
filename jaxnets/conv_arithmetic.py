"""The lecture's convolution arithmetic: output sizes, parameter counts, FLOPs.

Everything here is plain integer arithmetic on shapes, so it can validate a
model before anything is compiled and explain its numbers in a summary table.

  output size   O = (W - K + 2P) / S + 1          (per spatial dimension)
  conv params   F*F*D1*K weights + K biases
  dense params  in*out weights + out biases
  conv FLOPs    H2*W2*F*F*D1*D2 multiply-adds     (the lecture's count)
  dense FLOPs   in*out multiply-adds

Bias adds are not counted, as in the lecture: they would add H2*W2*D2 (conv)
or out (dense) single additions per example.

Shapes are (height, width, depth), the HWC order the models use.
"""

from __future__ import annotations

Shape = tuple[int, ...]


def output_size(
    size: int, window: int, stride: int, padding: int = 0, *, layer: str = "layer"
) -> int:
    """`(W - K + 2P)/S + 1`, or a ValueError that shows the arithmetic.

    Args:
      size: input width (or height) W.
      window: window (kernel) size K.
      stride: stride S.
      padding: zero padding P on each side.
      layer: the layer's name, used in error messages.

    Returns:
      The output size O.

    >>> output_size(227, 11, 4, layer="CONV1")
    55
    """
    for what, value, least in (
        ("input size", size, 1), ("window", window, 1), ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if not isinstance(value, int) or value < least:
            raise ValueError(
                f"{layer}: {what} must be an integer >= {least}, got {value!r}")
    formula = f"({size} - {window} + 2*{padding})/{stride} + 1"
    if window > size + 2 * padding:
        raise ValueError(
            f"{layer}: window {window} is larger than the padded input "
            f"{size} + 2*{padding} = {size + 2 * padding}: use a smaller window, "
            f"more padding or a larger input")
    span = size - window + 2 * padding
    if span % stride:
        raise ValueError(
            f"{layer}: {formula} = {span / stride + 1:g} is not an integer: "
            f"change stride or padding (or the input size)")
    return span // stride + 1


def conv_output_shape(
    in_shape: Shape, features: int, window: int, stride: int = 1,
    padding: int = 0, *, layer: str = "conv",
) -> Shape:
    """(H2, W2, D2) of a convolution with `features` filters of F x F."""
    height, width, _ = _checked_volume(in_shape, layer)
    if not isinstance(features, int) or features < 1:
        raise ValueError(f"{layer}: number of filters must be >= 1, got {features!r}")
    return (output_size(height, window, stride, padding, layer=layer),
            output_size(width, window, stride, padding, layer=layer), features)


def pool_output_shape(
    in_shape: Shape, window: int, stride: int, *, layer: str = "pool"
) -> Shape:
    """(H2, W2, D1) of an unpadded pooling window: depth is unchanged."""
    height, width, depth = _checked_volume(in_shape, layer)
    return (output_size(height, window, stride, layer=layer),
            output_size(width, window, stride, layer=layer), depth)


def conv_weights(window: int, in_depth: int, features: int) -> int:
    """F*F*D1*K: one F x F filter per pair of input and output channels."""
    return window * window * in_depth * features


def conv_params(window: int, in_depth: int, features: int) -> int:
    """F*F*D1*K weights plus K biases."""
    return conv_weights(window, in_depth, features) + features


def dense_params(n_in: int, n_out: int) -> int:
    """in*out weights plus out biases."""
    return n_in * n_out + n_out


def conv_flops(out_shape: Shape, window: int, in_depth: int) -> int:
    """The lecture's FLOPs: H2*W2*F*F*D1*D2 multiply-adds."""
    out_height, out_width, out_depth = out_shape
    return out_height * out_width * window * window * in_depth * out_depth


def dense_flops(n_in: int, n_out: int) -> int:
    """in*out multiply-adds."""
    return n_in * n_out


def taps_on_input(size: int, window: int, stride: int, padding: int) -> int:
    """Pairs (output position, window tap) along one dimension that land on the
    real input rather than on zero padding.

    Without padding this is O*K; with padding the taps that read the zeros are
    fewer, and XLA's cost analysis does not count them.
    """
    out = output_size(size, window, stride, padding)
    return sum(
        1
        for o in range(out)
        for k in range(window)
        if 0 <= o * stride - padding + k < size
    )


def conv_flops_on_input(
    in_shape: Shape, features: int, window: int, stride: int = 1, padding: int = 0
) -> int:
    """Multiply-adds that touch real input (padding taps skipped).

    Equals `conv_flops` when padding is 0; this is the count XLA reports
    (times 2: it counts the multiply and the add separately).
    """
    height, width, depth = in_shape
    return (taps_on_input(height, window, stride, padding)
            * taps_on_input(width, window, stride, padding) * depth * features)


def parse_shape(text: str) -> Shape:
    """'227x227x3' -> (227, 227, 3), with a clear error for anything else."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input shape {text!r} is not HxWxC with three positive integers, "
            f"e.g. 227x227x3")
    return shape


def format_shape(shape: Shape) -> str:
    """(55, 55, 96) -> '55x55x96', the lecture's notation."""
    return "x".join(str(d) for d in shape)


def _checked_volume(in_shape: Shape, layer: str) -> Shape:
    if len(in_shape) != 3:
        raise ValueError(
            f"{layer}: expects an HxWxD volume, got shape {format_shape(in_shape)}; "
            f"a convolution or pooling layer cannot follow a flattened layer")
    return tuple(in_shape)
