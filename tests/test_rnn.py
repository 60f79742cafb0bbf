"""The lecture's recurrence: scan equals the formula, gradients, masking."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxnets.models import rnn, rnn_kernels, rnn_modes


def _vanilla_params(key, d=3, h=4):
    cell = rnn.VanillaCell(h)
    return cell, cell.init(key, jnp.zeros((1, d)), method=cell.project)


def _run_rnn(cell, variables, x, mask):
    def f(module):
        carry = module.initial_carry(jnp.zeros((x.shape[0], module.hidden_size)))
        return rnn.masked_scan(module.recurrence(), carry, module.project(x), mask)
    return cell.apply(variables, method=f)


def test_scan_equals_python_loop_of_the_formula():
    cell, variables = _vanilla_params(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 6, 3))
    h_final, hs = _run_rnn(cell, variables, x, jnp.ones((2, 6), bool))
    p = variables["params"]
    W_xh, b, W_hh = p["W_xh"]["kernel"], p["W_xh"]["bias"], p["W_hh"]
    h = np.zeros((2, 4), np.float32)
    for t in range(6):  # h_t = tanh(W_hh h_{t-1} + W_xh x_t + b), same weights each step
        h = np.tanh(h @ np.asarray(W_hh) + np.asarray(x[:, t]) @ np.asarray(W_xh) + np.asarray(b))
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_final, h, rtol=1e-5, atol=1e-6)


def test_gradients_match_finite_differences():
    cell, variables = _vanilla_params(jax.random.key(2), d=2, h=3)
    variables = jax.tree.map(lambda a: a.astype(jnp.float32), variables)
    x = jax.random.normal(jax.random.key(3), (1, 4, 2))
    mask = jnp.ones((1, 4), bool)

    def loss(v):
        h, hs = _run_rnn(cell, v, x, mask)
        return jnp.sum(h ** 2) + jnp.sum(hs[:, 1])

    grads = jax.grad(loss)(variables)
    flat, unravel = ravel_pytree(variables)
    g_flat, _ = ravel_pytree(grads)
    eps = 1e-3
    for i in range(flat.size):
        e = jnp.zeros_like(flat).at[i].set(eps)
        numeric = (loss(unravel(flat + e)) - loss(unravel(flat - e))) / (2 * eps)
        np.testing.assert_allclose(g_flat[i], numeric, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru"])
def test_padding_never_changes_a_result(cell):
    model = rnn_modes.RNNClassifier(vocab_size=30, hidden_size=8, embed_dim=5, cell=cell)
    rows = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13, 14]]
    lengths = jnp.array([len(r) for r in rows])
    padded = jnp.array([r + [0] * (6 - len(r)) for r in rows])
    variables = model.init(jax.random.key(0), padded, lengths)
    batch_logits = model.apply(variables, padded, lengths)
    for i, row in enumerate(rows):
        alone = model.apply(variables, jnp.array([row]), jnp.array([len(row)]))
        np.testing.assert_allclose(batch_logits[i], alone[0], rtol=1e-5, atol=1e-6)
    # more padding on the right changes nothing either
    wider = jnp.pad(padded, ((0, 0), (0, 5)), constant_values=17)
    np.testing.assert_allclose(model.apply(variables, wider, lengths), batch_logits,
                               rtol=1e-5, atol=1e-6)


def test_per_step_outputs_are_zero_on_padding_and_final_state_is_last_real_step():
    cell, variables = _vanilla_params(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (1, 5, 3))
    mask = jnp.array([[True, True, True, False, False]])
    h_final, hs = _run_rnn(cell, variables, x, mask)
    np.testing.assert_array_equal(hs[0, 3:], 0.0)
    np.testing.assert_array_equal(h_final[0], hs[0, 2])


def test_one_parameter_set_whatever_the_length():
    model = rnn_modes.RNNClassifier(vocab_size=30, hidden_size=8, embed_dim=5)
    shapes = [jax.tree.map(jnp.shape, model.init(
        jax.random.key(0), jnp.ones((2, t), jnp.int32), jnp.full((2,), t)))
        for t in (3, 50)]
    assert shapes[0] == shapes[1]


def test_unknown_cell_is_a_clear_error_when_the_model_is_made():
    with pytest.raises(ValueError, match="unknown cell 'transformer'; choose one of: vanilla"):
        rnn_modes.RNNClassifier(vocab_size=30, cell="transformer")


@pytest.mark.parametrize("cell", ["vanilla", "lstm"])
def test_greedy_decoding_agrees_with_teacher_forcing(cell):
    """Feeding the greedy output back in as teacher-forced input reproduces it."""
    model = rnn_modes.Seq2Seq(source_vocab_size=9, target_vocab_size=11, hidden_size=16,
                              embed_dim=6, cell=cell)
    source, source_lengths = jnp.array([[2, 3, 4], [5, 6, 0]]), jnp.array([3, 2])
    start = jnp.ones((2, 1), jnp.int32)
    variables = model.init(jax.random.key(0), source, source_lengths, start, jnp.array([1, 1]))
    generated = model.apply(variables, source, source_lengths, 5, method=model.generate)
    inputs = jnp.concatenate([start, generated[:, :-1]], axis=1)
    scores = model.apply(variables, source, source_lengths, inputs, jnp.array([5, 5]))
    np.testing.assert_array_equal(jnp.argmax(scores, -1), generated)


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru"])
def test_seq2seq_decoder_starts_from_the_encoders_whole_final_state(cell):
    model = rnn_modes.Seq2Seq(source_vocab_size=9, target_vocab_size=11, hidden_size=16,
                              embed_dim=6, cell=cell)
    source, source_lengths = jnp.array([[2, 3, 4], [5, 6, 0]]), jnp.array([3, 2])
    variables = model.init(jax.random.key(0), source, source_lengths,
                           jnp.ones((2, 1), jnp.int32), jnp.array([1, 1]))

    def encoder_final_state(module):
        mask = rnn.length_mask(source_lengths, source.shape[1])
        return module.encoder(module.source_embed(source), mask)[0]

    encoded = model.apply(variables, source, source_lengths, method=model.encode)
    final = model.apply(variables, method=encoder_final_state)
    for a, b in zip(jax.tree.leaves(encoded), jax.tree.leaves(final)):
        np.testing.assert_array_equal(a, b)  # an LSTM's cell state c too, not zeros
    assert all(float(jnp.abs(leaf).max()) > 0 for leaf in jax.tree.leaves(encoded))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_vanilla_scan_equals_the_generic_split_scan(dtype):
    """The vanilla cell's own scan (rnn_kernels.vanilla_scan) against the form every cell ran
    before it (rnn_kernels.split_scan): padded rows, a non-zero h0, cotangents on the final state
    and on every output. The outputs and d h0, d xp are bitwise the same; d W_hh sums the
    T*B rows in another order (float32 rounding)."""
    T, B, H = 9, 5, 6
    keys = jax.random.split(jax.random.key(7), 5)
    W = (jax.random.normal(keys[0], (H, H)) * 0.5).astype(dtype)
    xp = jax.random.normal(keys[1], (T, B, H)).astype(dtype)
    h0 = (jax.random.normal(keys[2], (B, H)) * 0.3).astype(dtype)
    mask = jnp.arange(T)[:, None] < jnp.array([9, 4, 0, 1, 7])[None, :]
    d_final = jax.random.normal(keys[3], (B, H))
    d_hs = jax.random.normal(keys[4], (T, B, H))

    def fast(W, h0, xp):
        return rnn_kernels.vanilla_scan(W, h0, xp, mask)

    def generic(W, h0, xp):
        return rnn_kernels.split_scan(rnn._vanilla_gates, lambda h: h, W, (), h0, xp, mask)

    def loss(f):
        def value(W, h0, xp):
            final, hs = f(W, h0, xp)
            return (jnp.sum(final.astype(jnp.float32) * d_final)
                    + jnp.sum(hs.astype(jnp.float32) * d_hs))
        return jax.jit(jax.grad(value, argnums=(0, 1, 2)))

    for a, b in zip(jax.jit(fast)(W, h0, xp), jax.jit(generic)(W, h0, xp)):
        assert a.dtype == b.dtype == dtype and bool(jnp.array_equal(a, b))
    (dW, dh0, dxp), (gW, gh0, gxp) = loss(fast)(W, h0, xp), loss(generic)(W, h0, xp)
    assert bool(jnp.array_equal(dh0, gh0)) and bool(jnp.array_equal(dxp, gxp))
    assert dW.dtype == gW.dtype == dtype
    np.testing.assert_allclose(np.asarray(dW, np.float32), np.asarray(gW, np.float32),
                               rtol=2e-2 if dtype == jnp.bfloat16 else 1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru"])
def test_the_input_projection_is_nn_dense_with_autodiffs_gradient(cell, dtype):
    """A cell's W_xh (rnn._projection: nn.Dense with `rnn_kernels.rows_product`) has
    nn.Dense's parameters and autodiff's gradients of the plain product: bitwise in float32; in
    bfloat16 XLA may keep float32 where it rounds the plain product's (excess precision)."""
    x = jax.random.normal(jax.random.key(1), (7, 5, 3))
    layer = rnn.make_cell(cell, 4, dtype=dtype)
    params = layer.init(jax.random.key(2), x, method=layer.project)
    hidden = {"vanilla": 4, "lstm": 16, "gru": 12}[cell]
    plain = nn.Dense(hidden, dtype=dtype, bias_init=(layer._bias_init if cell == "lstm"
                                                      else nn.initializers.zeros))
    assert jax.tree.map(jnp.shape, params["params"]["W_xh"]) == {"bias": (hidden,),
                                                                "kernel": (3, hidden)}
    d_out = jax.random.normal(jax.random.key(3), (7, 5, hidden))

    def grads(apply, p):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(apply(p, x).astype(jnp.float32) * d_out),
                                argnums=(0, 1)))(p, x)

    ours = grads(lambda p, x: layer.apply({"params": {**params["params"], "W_xh": p}}, x,
                                          method=layer.project), params["params"]["W_xh"])
    theirs = grads(lambda p, x: plain.apply({"params": p}, x), params["params"]["W_xh"])
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        assert a.dtype == b.dtype
        if dtype == jnp.float32:
            assert bool(jnp.array_equal(a, b))
        else:
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-2, atol=2e-2)


def test_vanilla_rnn_takes_its_own_scan_and_other_cells_the_generic_one(monkeypatch):
    calls = []
    fast, generic = rnn_kernels.vanilla_scan, rnn_kernels.split_scan
    monkeypatch.setattr(rnn_kernels, "vanilla_scan",
                        lambda *a: calls.append("vanilla") or fast(*a))
    monkeypatch.setattr(rnn_kernels, "split_scan", lambda *a: calls.append("split") or generic(*a))
    x, mask = jnp.ones((2, 3, 4)), jnp.ones((2, 3), bool)
    for cell in ("vanilla", "lstm", "gru"):
        layer = rnn.RNN(5, cell)
        layer.init(jax.random.key(0), x, mask)
    assert calls == ["vanilla", "split", "split"]
