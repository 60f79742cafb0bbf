"""The lecture's convolution arithmetic, checked against its own numbers and
against real Flax layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings, strategies as st

from jaxnets import conv_arithmetic as ca


def test_lecture_conv1_output_size():
    assert ca.output_size(227, 11, 4, 0) == 55  # (227-11)/4+1


def test_lecture_conv1_volume_and_parameters():
    assert ca.conv_output_shape((227, 227, 3), 96, 11, 4, 0) == (55, 55, 96)
    assert ca.conv_weights(11, 3, 96) == 34_848  # (11x11x3)x96 = "35K"
    assert ca.conv_params(11, 3, 96) == 34_848 + 96


def test_lecture_pool1_volume():
    assert ca.output_size(55, 3, 2) == 27  # (55-3)/2+1
    assert ca.pool_output_shape((55, 55, 96), 3, 2) == (27, 27, 96)


def test_lecture_padding_examples():
    assert ca.output_size(7, 3, 1, 0) == 5  # window 3x3, stride 1, pad 0
    assert ca.output_size(7, 3, 1, 1) == 7  # pad 1 keeps the size
    assert ca.output_size(7, 3, 2, 0) == 3  # stride 2 reduces dimension


def test_flops_formula():
    # H2*W2*F*F*D1*D2 for AlexNet CONV1
    assert ca.conv_flops((55, 55, 96), 11, 3) == 55 * 55 * 11 * 11 * 3 * 96
    assert ca.dense_flops(9216, 4096) == 9216 * 4096
    assert ca.dense_params(9216, 4096) == 9216 * 4096 + 4096


def test_padding_taps_are_excluded_only_when_padded():
    assert ca.conv_flops_on_input((227, 227, 3), 96, 11, 4, 0) == ca.conv_flops(
        (55, 55, 96), 11, 3)
    # 3x3 pad 1 on 13x13: the border outputs lose 1 tap each per dimension
    assert ca.taps_on_input(13, 3, 1, 1) == 13 * 3 - 2


def test_non_integer_output_names_layer_and_arithmetic():
    with pytest.raises(ValueError) as e:
        ca.output_size(28, 5, 2, 0, layer="conv2")
    msg = str(e.value)
    assert "conv2" in msg and "(28 - 5 + 2*0)/2 + 1 = 12.5" in msg
    assert "change stride or padding" in msg


@pytest.mark.parametrize("args, words", [
    ((5, 7, 1, 0), "larger than the padded input"),
    ((5, 3, 0, 0), "stride must be an integer >= 1"),
    ((0, 3, 1, 0), "input size must be an integer >= 1"),
    ((5, 3, 1, -1), "padding must be an integer >= 0"),
    ((5, 0, 1, 0), "window must be an integer >= 1"),
])
def test_bad_configurations_raise(args, words):
    with pytest.raises(ValueError, match=words):
        ca.output_size(*args, layer="L")


def test_parse_shape():
    assert ca.parse_shape("227x227x3") == (227, 227, 3)
    for bad in ("227x227", "axbxc", "0x5x5", ""):
        with pytest.raises(ValueError, match="HxWxC"):
            ca.parse_shape(bad)


@st.composite
def valid_conv(draw):
    window = draw(st.integers(1, 7))
    stride = draw(st.integers(1, 4))
    padding = draw(st.integers(0, 3))
    steps = draw(st.integers(0, 6))
    size = window - 2 * padding + steps * stride
    if size < 1:
        size += stride * ((1 - size) // stride + 1)
    return size, window, stride, padding


@settings(max_examples=40, deadline=None)
@given(valid_conv(), st.integers(1, 3), st.integers(1, 4))
def test_formula_matches_flax_conv(cfg, in_depth, features):
    size, window, stride, padding = cfg
    expected = ca.conv_output_shape((size, size + stride, in_depth), features,
                                    window, stride, padding)
    conv = nn.Conv(features, (window, window), strides=stride,
                   padding=((padding, padding),) * 2)
    x = jnp.zeros((1, size, size + stride, in_depth))
    out = jax.eval_shape(lambda: conv.init_with_output(jax.random.key(0), x)[0])
    assert out.shape[1:] == expected


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 6), st.integers(1, 3))
def test_formula_matches_flax_max_pool(window, stride, steps, depth):
    size = window + steps * stride  # pooling is unpadded: sizes that divide
    expected = ca.pool_output_shape((size, size, depth), window, stride)
    out = nn.max_pool(jnp.zeros((1, size, size, depth)), (window, window),
                      strides=(stride, stride), padding="VALID")
    assert out.shape[1:] == expected


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 9), st.integers(1, 5), st.integers(0, 4))
def test_formula_accepts_exactly_what_divides(size, window, stride, padding):
    span = size - window + 2 * padding
    if span < 0 or span % stride:
        with pytest.raises(ValueError):
            ca.output_size(size, window, stride, padding)
    else:
        assert ca.output_size(size, window, stride, padding) == span // stride + 1
