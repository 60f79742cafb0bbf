"""The dropout key's bits are threefry's, bit for bit (jaxnets/train/dropout_key.py)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.train.dropout_key import THREEFRY_WRITTEN_OUT, dropout_key

RAW = jax.random.key_data(jax.random.fold_in(jax.random.PRNGKey(3), 11))


@pytest.mark.parametrize("shape", [(1,), (7,), (64, 200, 64), (3, 5, 7, 2), (1000, 3)])
@pytest.mark.parametrize("width", [8, 16, 32])
def test_bits_are_threefrys(shape, width):
    ours = jax.jit(lambda k: jax.random.bits(dropout_key(k), shape, f"uint{width}"))(RAW)
    theirs = jax.random.bits(jax.random.wrap_key_data(RAW), shape, f"uint{width}")
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_split_fold_in_and_draws_are_threefrys():
    ours, theirs = dropout_key(RAW), jax.random.wrap_key_data(RAW)
    for a, b in [(jax.random.split(ours, 3), jax.random.split(theirs, 3)),
                 (jax.random.fold_in(ours, 5), jax.random.fold_in(theirs, 5))]:
        np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
    for draw in (lambda k: jax.random.uniform(k, (33, 17)),
                 lambda k: jax.random.normal(k, (8, 9)),
                 lambda k: jax.random.bernoulli(k, 0.7, (64, 50)),
                 lambda k: jax.vmap(lambda k: jax.random.uniform(k, (5,)))(jax.random.split(k, 4))):
        np.testing.assert_array_equal(np.asarray(jax.jit(draw)(ours)), np.asarray(draw(theirs)))


def test_flax_dropout_masks_are_threefrys():
    x = jnp.arange(1.0, 1 + 4 * 30 * 8).reshape(4, 30, 8)
    drop = nn.Dropout(0.3)
    ours = drop.apply({}, x, deterministic=False, rngs={"dropout": dropout_key(RAW)})
    theirs = drop.apply({}, x, deterministic=False, rngs={"dropout": RAW})
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert 0.6 < float((ours != 0).mean()) < 0.8


def test_a_typed_key_is_used_as_it_is():
    key = jax.random.key(0, impl="rbg")
    assert dropout_key(key) is key
    assert jax.random.key_impl(dropout_key(RAW)) == jax.random.key_impl(
        jax.random.wrap_key_data(RAW, impl=THREEFRY_WRITTEN_OUT))


def test_training_with_it_is_training_with_threefry():
    """Dense + dropout + Adam for 4 steps in one program (lax.scan), as the loop's
    steps_per_call does: the parameters bit for bit. (With the hash fused into dropout's
    forward and backward, the same masks gave other float roundings: this failed.)"""
    import optax  # pylint: disable=g-import-not-at-top
    x = jax.random.normal(jax.random.key(0), (16, 12))
    y = jax.random.randint(jax.random.key(1), (16,), 0, 3)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dropout(0.2, deterministic=False)(nn.relu(nn.Dense(16)(x)))
            return nn.Dense(3)(x)

    net, tx = Net(), optax.adam(0.05)
    params = net.init(jax.random.key(2), x)

    def train(wrap):
        def step(carry, i):
            p, opt = carry
            key = jax.random.fold_in(RAW, i)
            key = dropout_key(key) if wrap else key

            def loss(p):
                logits = net.apply(p, x, rngs={"dropout": key})
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            grads = jax.grad(loss)(p)
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), None
        return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), jnp.arange(4))[0][0])(
            params)

    for a, b in zip(jax.tree.leaves(train(True)), jax.tree.leaves(train(False))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
