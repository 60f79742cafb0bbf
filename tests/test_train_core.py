"""The training engine's parts: masked losses and metrics, optax table, model adapters, data."""

import itertools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnets.train import config as config_lib
from jaxnets.train import losses, model_api, optim
from jaxnets.train.placement import Stacked, stack_batches
from jaxnets.train.inputs import EPOCH_END, ArrayData, as_inputs, epoch_stream


# -- losses and metrics --------------------------------------------------------------


def test_masked_loss_ignores_padding_rows():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [1e30, -1e30], [jnp.nan, 0.0]])
    labels = jnp.array([0, 0, 1, 1])
    mask = jnp.array([1.0, 1.0, 0.0, 0.0])
    mean, sums = losses.softmax_cross_entropy(logits, labels, mask)
    real, real_sums = losses.softmax_cross_entropy(logits[:2], labels[:2], mask[:2])
    assert np.isfinite(mean) and mean == pytest.approx(float(real))
    assert float(sums.count) == 2 and float(sums.correct) == 1  # row 0 right, row 1 wrong
    assert float(sums.loss_sum) == pytest.approx(float(real_sums.loss_sum))


def test_all_padding_batch_gives_zero_not_nan():
    mean, sums = losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros(3, jnp.int32),
                                              jnp.zeros(3))
    assert float(mean) == 0.0 and float(sums.count) == 0


@pytest.mark.parametrize("batch, message", [
    ({"label": np.zeros(4, np.float32)}, "dtype float32: it must hold integer class ids"),
    ({"label": np.zeros((4, 1), np.int32)}, r"shape \(4, 1\): it must be \[batch\]"),
    ({"label": np.zeros(4, np.int32), "mask": np.ones((4, 1))}, r"mask has shape \(4, 1\)"),
    ({"image": np.zeros(4)}, "no 'label'.*its keys: image"),
    ({"targets": np.zeros((4, 5), np.int32)}, "needs a target_mask of the same shape"),
    ({"targets": np.zeros((4, 5), np.int32), "target_mask": np.ones((4, 6))},
     r"target_mask of the same shape.*got \(4, 6\)"),
])
def test_a_malformed_batch_is_named_when_the_step_is_traced(batch, message):
    logits = jnp.zeros((4, 5, 3)) if "targets" in batch else jnp.zeros((4, 3))
    with pytest.raises(ValueError, match=message):
        jax.jit(losses.task_loss).trace(logits, batch)  # shapes and dtypes are static


def test_boolean_and_wide_integer_labels_are_class_ids():
    for labels in (np.array([True, False, True, True]), np.arange(4, dtype=np.int64) % 3,
                   np.arange(4, dtype=np.uint8) % 3):
        mean, sums = losses.task_loss(jnp.zeros((4, 3)), {"label": labels})
        assert np.isclose(mean, np.log(3)) and float(sums.count) == 4


def test_a_model_returning_a_tuple_is_told_what_to_return():
    with pytest.raises(TypeError, match="returned a tuple: its apply must return one array"):
        losses.task_loss((jnp.zeros((4, 3)),), {"label": np.zeros(4, np.int32)})


def test_a_label_that_is_no_class_makes_the_loss_nan_not_a_wrapped_class():
    logits = jnp.zeros((3, 3))
    for bad in (-1, 3):
        mean, _ = losses.softmax_cross_entropy(logits, jnp.array([0, bad, 2]), jnp.ones(3))
        assert np.isnan(mean)
    mean, _ = losses.softmax_cross_entropy(logits, jnp.array([0, -1, 2]),
                                           jnp.array([1.0, 0.0, 1.0]))  # padding row: ignored
    assert np.isclose(mean, np.log(3))


def test_metrics_merged_over_batches_equal_one_big_batch():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(10, 3)), rng.integers(0, 3, 10)
    whole = losses.softmax_cross_entropy(logits, labels, np.ones(10))[1].compute()
    a = losses.softmax_cross_entropy(logits[:7], labels[:7], np.ones(7))[1]
    b = losses.softmax_cross_entropy(logits[7:], labels[7:], np.ones(3))[1]
    merged = losses.Metrics.zeros().merge(a).merge(b).compute()
    assert merged["examples"] == 10
    assert merged["loss"] == pytest.approx(whole["loss"], rel=1e-6)
    assert merged["accuracy"] == pytest.approx(whole["accuracy"])


def test_loss_rejects_non_logit_outputs_with_a_clear_message():
    with pytest.raises(ValueError, match="logits"):
        losses.classification_loss(jnp.zeros((4,)), {"label": np.zeros(4, np.int32)})


# -- optimisers and schedules ----------------------------------------------------------


def _config(**fields):
    c = config_lib.default_config()
    c.update(fields)
    return c


def _toy_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 3))).argmax(-1)
    params = {"w": jnp.zeros((5, 3)), "b": jnp.zeros(3)}

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(x @ p["w"] + p["b"], y).mean()
    return params, loss


@pytest.mark.parametrize("optimizer", config_lib.OPTIMIZERS)
@pytest.mark.parametrize("schedule", config_lib.SCHEDULES)
def test_every_optimizer_and_schedule_lowers_the_loss(optimizer, schedule):
    config = _config(optimizer=optimizer, schedule=schedule, learning_rate=0.1,
                     warmup_steps=5, weight_decay=1e-4, grad_clip_norm=10.0)
    tx, _ = optim.make_optimizer(config, total_steps=40)
    params, loss = _toy_problem()
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    start = float(loss(params))
    for _ in range(40):
        params, opt_state = step(params, opt_state)
    assert float(loss(params)) < 0.8 * start


def test_padding_rows_with_non_finite_scores_leave_the_gradient_finite():
    logits = jnp.array([[1.0, 2.0, 3.0], [0.5, 0.1, 0.2], [jnp.inf, 0.0, jnp.nan]])
    labels, mask = jnp.array([0, 1, 2]), jnp.array([1.0, 1.0, 0.0])

    def loss(logits, rows):
        return losses.softmax_cross_entropy(logits[:rows], labels[:rows], mask[:rows])[0]

    grad = jax.grad(loss)(logits, 3)
    assert float(loss(logits, 3)) == pytest.approx(float(loss(logits, 2)))
    np.testing.assert_array_equal(grad[2], 0.0)  # not NaN: the run would stop
    np.testing.assert_allclose(grad[:2], jax.grad(loss)(logits, 2)[:2], rtol=1e-6)


def test_schedule_values():
    lr, total = 0.1, 100
    warm = optim.make_schedule(_config(learning_rate=lr, schedule="warmup_cosine",
                                       warmup_steps=10), total)
    assert float(warm(0)) == 0.0 and float(warm(5)) == pytest.approx(lr / 2)
    assert float(warm(10)) == pytest.approx(lr) and float(warm(total)) == pytest.approx(0.0)
    cos = optim.make_schedule(_config(learning_rate=lr, schedule="cosine"), total)
    assert float(cos(50)) == pytest.approx(lr / 2)
    step = optim.make_schedule(_config(learning_rate=lr, schedule="step",
                                       step_boundaries=(0.5, 0.75), step_factor=0.1), total)
    assert [float(step(t)) for t in (49, 50, 75)] == pytest.approx([lr, lr / 10, lr / 100])


@pytest.mark.parametrize("total, bounds", [
    (3, (0.5, 0.75)), (4, (0.5, 0.6)), (100, (0.29, 0.57)), (4, (0.3, 0.5)), (7, (0.2,))])
def test_step_schedule_decays_at_the_first_step_past_each_fraction(total, bounds):
    schedule = optim.make_schedule(_config(learning_rate=1.0, schedule="step",
                                           step_boundaries=bounds, step_factor=0.1), total)
    for t in range(total):  # t = updates done so far; 0.29 * 100 is 28.999999999999996
        passed = sum(t >= b * total - 1e-9 for b in bounds)
        assert float(schedule(t)) == pytest.approx(0.1 ** passed), (t, passed)


@pytest.mark.parametrize("field, value", [
    ("weight_decay", -1.0), ("grad_clip_norm", -1.0), ("eval_max_batches", -1),
    ("eval_batch_size", -2), ("warmup_steps", -5), ("max_length", -3),
    ("momentum", 1.5), ("b2", 1.0), ("learning_rate", float("nan")),
    ("learning_rate", float("inf"))])
def test_out_of_range_values_are_config_errors(field, value):
    with pytest.raises(config_lib.ConfigError, match=f"{field} must be"):
        config_lib.validate(_config(**{field: value}))


def test_warmup_longer_than_the_run_is_a_config_error():
    with pytest.raises(config_lib.ConfigError, match="warmup_steps=50"):
        optim.make_schedule(_config(schedule="warmup_cosine", warmup_steps=50), 20)


@pytest.mark.parametrize("optimizer", config_lib.OPTIMIZERS)
def test_weight_decay_spares_biases_and_norm_scales(optimizer):
    params = {"Dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
              "LayerNorm": {"scale": jnp.ones(2)}, "Embed": {"embedding": jnp.ones((4, 2))}}
    tx, _ = optim.make_optimizer(
        _config(optimizer=optimizer, learning_rate=0.1, weight_decay=0.5), 10)
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    moved = jax.tree.map(lambda u: bool(jnp.any(u != 0)), updates)
    assert moved == {"Dense": {"kernel": True, "bias": False},
                     "LayerNorm": {"scale": False}, "Embed": {"embedding": True}}


def test_gradients_are_clipped_by_global_norm():
    tx, _ = optim.make_optimizer(_config(optimizer="sgd", learning_rate=1.0,
                                         grad_clip_norm=2.0), 10)
    params = {"a": jnp.zeros(3), "b": jnp.zeros(4)}
    grads = {"a": jnp.full(3, 10.0), "b": jnp.full(4, -10.0)}
    updates, _ = tx.update(grads, tx.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(2.0)


@pytest.mark.parametrize("field, value", [("optimizer", "adagrad"), ("schedule", "linear"),
                                          ("dtype", "int8")])
def test_unknown_choice_names_the_value_and_the_choices(field, value):
    with pytest.raises(config_lib.ConfigError, match=f"unknown {field} '{value}'.*choose"):
        config_lib.validate(_config(**{field: value}))


# -- model adapters --------------------------------------------------------------------


class _BatchNormNet(nn.Module):
    @nn.compact
    def __call__(self, image, *, train):
        x = nn.BatchNorm(use_running_average=not train)(image.reshape(image.shape[0], -1))
        return nn.Dense(2)(x)


class _NoTrainArg(nn.Module):
    @nn.compact
    def __call__(self, tokens, lengths):
        return nn.Dense(2)(nn.Embed(10, 4)(tokens).sum(1) / lengths[:, None])


def test_flax_model_updates_batch_stats_only_when_training():
    model = model_api.as_model(_BatchNormNet())
    batch = {"image": np.arange(24, dtype=np.float32).reshape(4, 3, 2, 1)}
    params, state = model.init(jax.random.PRNGKey(0), batch)
    assert set(state) == {"batch_stats"}
    _, new_state = model.apply(params, state, batch, train=True, rng=jax.random.PRNGKey(1))
    _, eval_state = model.apply(params, state, batch, train=False, rng=jax.random.PRNGKey(1))
    mean = lambda s: s["batch_stats"]["BatchNorm_0"]["mean"]  # noqa: E731
    assert not np.allclose(mean(new_state), mean(state))
    assert np.array_equal(mean(eval_state), mean(state))


def test_flax_model_feeds_tokens_and_lengths_and_skips_absent_train_arg():
    model = model_api.as_model(_NoTrainArg())
    batch = {"tokens": np.ones((3, 5), np.int32), "lengths": np.full(3, 5, np.int32)}
    params, state = model.init(jax.random.PRNGKey(0), batch)
    logits, _ = model.apply(params, state, batch, train=True, rng=jax.random.PRNGKey(1))
    assert logits.shape == (3, 2) and state == {}


def test_function_pair_is_a_model():
    def init(rng, batch):
        return {"w": jax.random.normal(rng, (batch["x"].shape[1], 2))}

    def apply(params, batch, *, train, rng):
        return batch["x"] @ params["w"]

    model = model_api.as_model((init, apply))
    batch = {"x": np.ones((4, 3), np.float32)}
    params, state = model.init(jax.random.PRNGKey(0), batch)
    assert model.apply(params, state, batch, train=False, rng=None)[0].shape == (4, 2)


def test_as_model_rejects_other_objects_with_the_contract():
    with pytest.raises(TypeError, match=r"init\(rng, batch\) -> params"):
        model_api.as_model(object())


def test_registry_and_custom_factories_get_only_the_arguments_they_take():
    lenet = model_api.build_model("lenet", model_kwargs={}, num_classes=7,
                                  input_shape=(32, 32, 1), vocab_size=None, dtype=None)
    assert lenet.module.layers[-1].features == 7
    with pytest.raises(config_lib.ConfigError, match="unknown model 'nope'.*lenet"):
        model_api.build_model("nope", model_kwargs={})
    with pytest.raises(config_lib.ConfigError, match="cannot import module 'no_such_pkg.mod'"):
        model_api.build_model("no_such_pkg.mod:make", model_kwargs={})


def test_create_state_initialises_exactly_as_init_and_tx_init_one_by_one():
    from jaxnets.models import LeNet
    from jaxnets.train.state import create_state
    model = model_api.as_model(LeNet())
    batch = {"image": np.zeros((2, 32, 32, 1), np.float32), "label": np.zeros(2, np.int32)}
    tx = optax.adamw(0.1)
    state = create_state(model, tx, batch, seed=3)  # one program, optimisation level 1
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(3))
    plain, _ = jax.jit(model.init)(init_key, batch)  # the default optimisation level
    expected = (plain, tx.init(plain), dropout_key, 0)
    got = (state.params, state.opt_state, state.rng, state.step)
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)


# -- in-memory data ------------------------------------------------------------------


def _arrays(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.normal(size=(n, 2, 2, 1)).astype(np.float32),
            "label": rng.integers(0, 2, n).astype(np.int32)}


def test_array_data_eval_has_every_example_once_and_masks_padding():
    data = ArrayData(_arrays(20), _arrays(11, 1), batch_size=4, eval_batch_size=4)
    batches = list(data.eval_batches())
    assert [b["image"].shape[0] for b in batches] == [4, 4, 4]
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.sum() == 11 and mask[11:].sum() == 0
    images = np.concatenate([b["image"] for b in batches])[:11]
    assert np.array_equal(images, _arrays(11, 1)["image"])


def test_array_data_epochs_are_reproducible_different_and_resumable():
    data = ArrayData(_arrays(20), None, batch_size=4, seed=3)
    first = [b["label"].tolist() + b["image"].ravel().tolist() for b in data.train_epoch(0)]
    again = [b["label"].tolist() + b["image"].ravel().tolist() for b in data.train_epoch(0)]
    other = [b["label"].tolist() + b["image"].ravel().tolist() for b in data.train_epoch(1)]
    tail = [b["label"].tolist() + b["image"].ravel().tolist()
            for b in data.train_epoch(0, start_step=2)]
    assert first == again and first != other and tail == first[2:]
    assert data.steps_per_epoch == 5 == len(first)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size=0: must be a positive integer"),
    ({"batch_size": -1}, "batch_size=-1: must be a positive integer"),
    ({"batch_size": 4, "eval_batch_size": 0}, "eval_batch_size=0: must be a positive integer"),
    ({"batch_size": 4, "process_index": 5, "process_count": 2}, "process_index=5"),
    ({"batch_size": 4, "eval": {}}, "a split is an empty dict"),
])
def test_array_data_refuses_sizes_that_cannot_work(kwargs, message):
    kwargs = {"eval": None, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        ArrayData(_arrays(20), **kwargs)


def test_array_data_refuses_a_start_step_outside_the_epoch_at_once():
    data = ArrayData(_arrays(20), None, batch_size=4)
    for start in (-1, 6):
        with pytest.raises(ValueError, match=rf"start_step={start} is outside 0..5"):
            data.train_epoch(0, start_step=start)  # raised before the first batch
    assert list(data.train_epoch(0, start_step=5)) == []


def test_array_data_batches_do_not_depend_on_how_many_rows_are_gathered_at_once():
    whole = ArrayData(_arrays(23), None, batch_size=4, seed=5)
    chunked = ArrayData(_arrays(23), None, batch_size=4, seed=5)
    chunked.chunk_bytes = 2 * 4 * 20  # two batches of 20-byte rows per gather
    for start in (0, 1, 3):
        a, b = list(whole.train_epoch(2, start)), list(chunked.train_epoch(2, start))
        assert len(a) == len(b) == 5 - start
        for x, y in zip(a, b):
            assert x.keys() == y.keys() == {"image", "label", "mask"}
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
    assert not a[0]["mask"].flags.writeable  # the shared all-ones mask


def test_inputs_accept_lists_functions_and_datasets():
    batches = list(ArrayData(_arrays(8), None, batch_size=4).train_epoch(0))
    from_list = as_inputs(batches, eval_data=batches)
    assert from_list.steps_per_epoch == 2
    assert len(list(from_list.train_epoch(3, 1))) == 1  # the same list every epoch, resumable
    assert len(list(from_list.eval_batches())) == 2
    from_fn = as_inputs(lambda epoch: iter(batches))
    assert from_fn.steps_per_epoch is None and from_fn.eval_batches is None
    with pytest.raises(TypeError, match="cannot train on 'int'"):
        as_inputs(3)


def test_sequence_loss_is_the_mean_over_real_tokens():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype(np.float32)
    targets = rng.integers(0, 7, size=(3, 5)).astype(np.int32)
    target_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], np.float32)
    batch = {"targets": targets, "target_mask": target_mask,
             "mask": np.array([1, 1, 0], np.float32)}  # row 2 is eval padding
    mean, sums = losses.task_loss(jnp.asarray(logits), batch)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    want = picked[:2][target_mask[:2] > 0].mean()  # 8 real tokens of the 2 real rows
    np.testing.assert_allclose(float(mean), want, rtol=1e-5)
    assert sums.compute()["examples"] == 2 and sums.compute()["scored"] == 8  # 2 rows, 8 tokens
    garbage = logits.copy()
    garbage[0, 3:] = 1e6  # scores on padded steps change nothing
    np.testing.assert_allclose(float(losses.task_loss(jnp.asarray(garbage), batch)[0]), want,
                               rtol=1e-5)


def test_epoch_stream_marks_epoch_ends_and_stops_at_the_step_count():
    epochs = {0: [10, 11, 12], 1: [20, 21, 22], 2: [30, 31, 32]}
    inputs = as_inputs(lambda epoch: epochs[epoch % 3])
    stream = list(epoch_stream(inputs, 0, 1, 6))  # from batch 1 of epoch 0, 6 batches
    assert stream == [11, 12, EPOCH_END, 20, 21, 22, EPOCH_END, 30]
    assert list(epoch_stream(inputs, 1, 0, 3)) == [20, 21, 22]  # no marker after the last


def test_epoch_stream_takes_every_epoch_from_one_stream_and_ends_on_an_empty_epoch():
    data = ArrayData(_arrays(12), None, batch_size=4, seed=0)
    inputs = as_inputs(data)
    opened = []

    def train_epochs(epoch, start):
        opened.append((epoch, start))
        return (batch for e in itertools.count(epoch)
                for batch in data.train_epoch(e, start if e == epoch else 0))
    inputs.train_epochs = train_epochs
    stream = [item for item in epoch_stream(inputs, 0, 2, 7)]
    expected = [*data.train_epoch(0, 2), EPOCH_END, *data.train_epoch(1), EPOCH_END,
                *data.train_epoch(2)][:9]
    assert opened == [(0, 2)] and len(stream) == len(expected) == 9
    for got, want in zip(stream, expected):
        assert got is EPOCH_END if want is EPOCH_END else np.array_equal(
            got["label"], want["label"])
    one_shot = as_inputs(iter([{"x": 1}]))
    assert list(epoch_stream(one_shot, 0, 0, 5)) == [{"x": 1}, EPOCH_END, EPOCH_END]


def test_stacked_batches_leave_what_cannot_fill_a_stack_single():
    batches = [{"x": np.full(2, i)} for i in range(8)]
    smaller = {"x": np.full(1, 8)}  # e.g. a list's last batch
    items = list(stack_batches([*batches[:3], EPOCH_END, *batches[3:], smaller], 2))
    kinds = [item if item is EPOCH_END else (
        ("stack", item.batch["x"][:, 0].tolist()) if isinstance(item, Stacked)
        else ("single", int(item["x"][0]))) for item in items]
    assert kinds == [("stack", [0, 1]), ("single", 2), EPOCH_END, ("stack", [3, 4]),
                     ("stack", [5, 6]), ("single", 7), ("single", 8)]
