"""LeNet and AlexNet against the lecture's tables, through real Flax init/apply."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.models import MODELS, AlexNet, LeNet, cnn, get_model_factory

ALEXNET_TABLE = [  # (name, output volume, parameters) as in the lecture
    ("CONV1", (55, 55, 96), 11 * 11 * 3 * 96 + 96),
    ("POOL1", (27, 27, 96), 0),
    ("NORM1", (27, 27, 96), 0),
    ("CONV2", (27, 27, 256), 5 * 5 * 96 * 256 + 256),
    ("POOL2", (13, 13, 256), 0),
    ("NORM2", (13, 13, 256), 0),
    ("CONV3", (13, 13, 384), 3 * 3 * 256 * 384 + 384),
    ("CONV4", (13, 13, 384), 3 * 3 * 384 * 384 + 384),
    ("CONV5", (13, 13, 256), 3 * 3 * 384 * 256 + 256),
    ("POOL3", (6, 6, 256), 0),
    ("FC6", (4096,), 6 * 6 * 256 * 4096 + 4096),
    ("FC7", (4096,), 4096 * 4096 + 4096),
    ("FC8", (1000,), 4096 * 1000 + 1000),
]

LENET_TABLE = [
    ("CONV1", (28, 28, 6), 156),
    ("POOL1", (14, 14, 6), 0),
    ("CONV2", (10, 10, 16), 2_416),
    ("POOL2", (5, 5, 16), 0),
    ("FC3", (120,), 48_120),
    ("FC4", (84,), 10_164),
    ("FC5", (10,), 850),
]


def _flax_param_counts(model, shape):
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
    return {name: sum(leaf.size for leaf in jax.tree.leaves(tree))
            for name, tree in variables["params"].items()}


def _intermediate_shapes(model, shape):
    """Output shape of every layer from a real (abstract) forward pass."""
    shapes = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        shapes[context.module.name] = out.shape[1:]
        return out

    def forward():
        with nn.intercept_methods(record):
            variables = model.init(jax.random.key(0), jnp.zeros((1, *shape)))
            return model.apply(variables, jnp.zeros((1, *shape)))

    jax.eval_shape(forward)
    return shapes


@pytest.mark.parametrize("factory, shape, table, total", [
    (AlexNet, (227, 227, 3), ALEXNET_TABLE, 62_378_344),
    (LeNet, (32, 32, 1), LENET_TABLE, 61_706),
])
def test_architecture_matches_lecture_table(factory, shape, table, total):
    model = factory()
    rows = cnn.layer_shapes(model.layers, shape)
    assert [(layer.name, out, layer.params(inp)) for layer, inp, out in rows] == table
    assert cnn.count_params(model.layers, shape) == total
    flax_counts = _flax_param_counts(model, shape)
    assert sum(flax_counts.values()) == total
    assert flax_counts == {name: p for name, _, p in table if p}


@pytest.mark.parametrize("factory, shape, table", [
    (AlexNet, (227, 227, 3), ALEXNET_TABLE), (LeNet, (32, 32, 1), LENET_TABLE)])
def test_flax_layer_outputs_match_table(factory, shape, table):
    shapes = _intermediate_shapes(factory(), shape)
    for name, volume, _ in table:
        if name.startswith(("CONV", "FC")):  # flax submodules
            assert shapes[name] == volume, name


def test_real_forward_pass_gives_class_scores():
    model = LeNet(num_classes=7)
    x = jax.random.normal(jax.random.key(1), (3, 32, 32, 1))
    variables = model.init(jax.random.key(0), x)
    logits = model.apply(variables, x)
    assert logits.shape == (3, 7) and bool(jnp.all(jnp.isfinite(logits)))


def test_alexnet_num_classes_and_dropout_only_in_training():
    model = AlexNet(num_classes=10)
    x = jax.random.normal(jax.random.key(1), (2, 227, 227, 3))
    variables = model.init(jax.random.key(0), x)
    eval_a = model.apply(variables, x)
    eval_b = model.apply(variables, x, train=False)
    assert eval_a.shape == (2, 10)
    np.testing.assert_array_equal(eval_a, eval_b)  # no randomness at evaluation
    train_a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    train_b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(train_a, train_b)  # dropout active in training


@pytest.mark.parametrize("beta", [0.75, 0.6])  # the paper's (rsqrt form) and any other
def test_local_response_norm_matches_paper_formula(beta):
    norm = cnn.LocalResponseNorm("NORM", size=5, k=2.0, alpha=1e-4, beta=beta)
    x = np.random.default_rng(0).normal(scale=30.0, size=(2, 3, 3, 8)).astype(np.float32)
    got = np.asarray(norm(jnp.asarray(x), train=False))
    want = np.empty_like(x)
    channels = x.shape[-1]
    for c in range(channels):  # b_c = a_c / (k + alpha * sum_{|c'-c|<=2} a_c'^2)^beta
        lo, hi = max(0, c - 2), min(channels - 1, c + 2)
        total = np.sum(x[..., lo:hi + 1] ** 2, axis=-1)
        want[..., c] = x[..., c] / (2.0 + 1e-4 * total) ** beta
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert not np.allclose(got, x / 2.0 ** beta)  # the neighbours matter
    grad = jax.grad(lambda v: jnp.sum(norm(v, train=False) * jnp.arange(8.0)))(jnp.asarray(x))
    plain = jax.grad(lambda v: jnp.sum(v / (2.0 + 1e-4 * jax.lax.reduce_window(
        v * v, 0.0, jax.lax.add, (1, 1, 1, 5), (1, 1, 1, 1),
        ((0, 0), (0, 0), (0, 0), (2, 2)))) ** beta * jnp.arange(8.0)))(jnp.asarray(x))
    np.testing.assert_allclose(grad, plain, rtol=1e-4, atol=1e-7)


def test_bad_input_shape_raises_named_error():
    model = LeNet()
    x = jnp.zeros((1, 27, 27, 1))
    with pytest.raises(ValueError, match=r"POOL1: \(23 - 2 \+ 2\*0\)/2 \+ 1 = 11.5"):
        model.init(jax.random.key(0), x)


def test_registry():
    assert MODELS["alexnet"] is AlexNet and MODELS["lenet"] is LeNet
    with pytest.raises(ValueError, match="unknown model 'resnet'; choose one of: alexnet"):
        get_model_factory("resnet")
