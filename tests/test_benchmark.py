"""The benchmark (tiny mode) and its arithmetic; the speed work keeps every result.

No timing is asserted anywhere: the machine is shared and noisy. What is asserted is
that the benchmark runs and reports what it should, that its FLOP counts are the
lecture's (and XLA's), and that each faster method computes the reference function
with the reference gradient.
"""

import dataclasses
import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets import configs
from jaxnets.benchmark import flops, input_lesson, keras_side, report, suite, timing, workloads
from jaxnets.background import background
from jaxnets.models import AlexNet, LeNet, cnn, kernels, rnn, summary
from jaxnets.models.alexnet import alexnet_layers
from jaxnets.models.lenet import lenet_layers
from jaxnets.models.rnn_modes import RNNClassifier

# -- FLOP arithmetic ------------------------------------------------------------------


def test_lenet_flops_are_the_lectures_and_xlas():
    macs = 28 * 28 * 25 * 6 + 10 * 10 * 150 * 16 + 400 * 120 + 120 * 84 + 84 * 10
    counts = flops.cnn_flops(LeNet())
    assert counts == {"forward": 2 * macs, "train": 6 * macs}
    rows = summary.summarize(LeNet().layers, (32, 32, 1))  # XLA's count, layer by layer
    assert sum(r.xla_flops for r in rows if r.xla_flops) == counts["forward"]


def test_alexnet_flops_match_the_summary_table():
    model = AlexNet()
    rows = summary.summarize(model.layers, model.input_shape, check_xla=False)
    assert flops.cnn_flops(model)["forward"] == 2 * sum(r.flops for r in rows)
    conv1 = 55 * 55 * 11 * 11 * 3 * 96  # the lecture's CONV1, 105,415,200 multiply-adds
    assert rows[0].flops == conv1 and flops.cnn_flops(model)["forward"] > 2 * conv1


def _dot_flops(jaxpr) -> int:
    """2 * multiply-adds of every dot_general, scans counted `length` times."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
        for name, sub in eqn.params.items():
            inner = getattr(sub, "jaxpr", None)
            if inner is not None and name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
                inner = getattr(inner, "jaxpr", inner)
                times = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
                total += times * _dot_flops(inner)
    return total


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru"])
def test_rnn_flops_formula_counts_every_matmul(cell):
    model = RNNClassifier(vocab_size=50, embed_dim=6, hidden_size=8, num_classes=3, cell=cell)
    tokens, lengths = jnp.ones((2, 5), jnp.int32), jnp.array([5, 5])
    params = model.init(jax.random.key(0), tokens, lengths)
    jaxpr = jax.make_jaxpr(lambda p: model.apply(p, tokens, lengths))(params).jaxpr
    counted = flops.rnn_classifier_flops(steps=5, embed_dim=6, hidden_size=8, num_classes=3,
                                         cell=cell)
    assert _dot_flops(jaxpr) == 2 * counted["forward"]  # two examples
    assert counted["train"] == 3 * counted["forward"]


# -- the benchmark runs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_results():
    options = suite.Options(sections=("gemm", "models", "lesson"), tiny=True, torch="auto")
    return suite.run(options, log=lambda line: None)


def test_tiny_benchmark_reports_every_section(tiny_results):
    results = tiny_results
    assert results["failures"] == []
    assert {(g.framework, g.dtype) for g in results["gemm"]} >= {
        ("jax", "float32"), ("jax", "bfloat16")}
    assert all(g.gflops > 0 for g in results["gemm"])
    assert [row["name"] for row in results["models"]] == list(workloads.NAMES)
    for row in results["models"]:
        numbers = report.model_numbers(row, results)
        assert numbers["train"]["jax"] > 0 and numbers["infer"]["jax"] > 0
        assert numbers["train"]["gflops"] == pytest.approx(
            numbers["train"]["jax"] * row["flops"]["train"] / 1e9)
        assert 0 < numbers["train"]["peak_fraction"] < 100
        assert row["compile_seconds"] > 0 and row["first_step_seconds"] >= row["compile_seconds"]
        assert math.isfinite(row["final_loss"])
        assert (numbers["train"]["torch"] is not None) == results["torch"]
        with_keras = (row["name"] == "rnn"  # the RNN's arm only; a note says why not
                      and keras_side.skip_reason(workloads.build("rnn", tiny=True)) is None)
        assert row["keras_note"] is None if row["name"] != "rnn" else (
            with_keras == (row["keras_note"] is None))
        assert ("keras_train" in row["stats"]) == with_keras
        assert (numbers["train"]["keras_ratio"] is not None) == with_keras
        k = configs.get(row["preset"]).steps_per_call  # as the preset trains
        assert row["steps_per_call"] == k and ("jax_train_single" in row["stats"]) == (k > 1)
    rows = results["lesson"].rows
    assert [r.method.split(" ")[0] for r in rows] == ["disk:", "naive", "RAM", "RAM", "RAM"]
    assert all(0 <= r.stall <= 1 and r.examples_per_sec > 0 and r.megabytes_per_sec > 0
               for r in rows)


def test_tiny_tables_and_json(tiny_results, tmp_path):
    text = report.markdown(tiny_results, "python -m jaxnets.experiments.benchmark --tiny")
    for heading in ("## GEMM", "## Training", "## Inference", "## Input pipeline lesson",
                    "## Targets (issue 7)"):
        assert heading in text
    assert "alexnet training >= 70% of float32 GEMM peak" in text
    assert "| feeding | examples/s | MB/s read | input stall |" in text
    assert "MB/s cold (after a drop)" in text
    paths = report.write(tiny_results, str(tmp_path), "cpu")
    data = json.loads(open(paths[1]).read())
    assert data["machine"]["backend"] == "cpu" and len(data["models"]) == 3
    assert data["models"][0]["derived"]["train"]["jax"] > 0


def test_speed_table_gives_each_arms_speed_over_the_reference():
    stats = {"base": timing.Stat.of([0.04, 0.05, 0.06]), "fast": timing.Stat.of([0.02, 0.025])}
    table = timing.speed_table(stats, 64, "base", first_column="key").splitlines()
    assert table[0] == "| key | training examples/s (median) | spread | speed / base's |"
    assert table[2] == "| base | 1,280 | 1,067..1,600 | 1.000x |"
    assert table[3] == "| fast | 2,844 | 2,560..3,200 | 2.222x |"


def test_keras_arm_skips_with_a_note_when_keras_is_missing(monkeypatch):
    monkeypatch.setattr(keras_side, "available", lambda: False)
    options = suite.Options(sections=("models",), models=("rnn",), tiny=True, torch="no")
    results = suite.run(options, log=lambda line: None)
    row, = results["models"]
    assert results["failures"] == [] and "keras_train" not in row["stats"]
    assert row["keras_note"] == "Keras not installed (pip install keras: the 'bench' extra)"
    assert "No Keras arm: rnn: Keras not installed" in report.markdown(results)
    with pytest.raises(ValueError, match="--keras=yes but Keras is not installed"):
        suite.run(dataclasses.replace(options, keras="yes"), log=lambda line: None)


def test_keras_arm_is_not_asked_for_what_it_cannot_mirror(monkeypatch):
    monkeypatch.setattr(keras_side, "available", lambda: True)
    monkeypatch.setattr(keras_side, "_imported_backend", lambda: None)
    rnn_workload = workloads.build("rnn", tiny=True)
    assert keras_side.skip_reason(rnn_workload) is None
    only = "Keras arm: only the vanilla RNN workload"
    assert keras_side.skip_reason(workloads.build("lenet", tiny=True)) == only
    lstm = dataclasses.replace(rnn_workload, torch_sizes={**rnn_workload.torch_sizes,
                                                          "cell": "lstm"})
    assert keras_side.skip_reason(lstm) == only
    assert keras_side.skip_reason(workloads.build("rnn", tiny=True, dtype=jnp.bfloat16)) == (
        "Keras arm: float32 only")
    monkeypatch.setattr(keras_side, "_imported_backend", lambda: "tensorflow")
    assert "imported on its 'tensorflow' backend" in keras_side.skip_reason(rnn_workload)


def test_keras_arm_trains_the_same_model_with_the_same_parameter_count():
    workload = workloads.build("rnn", tiny=True)
    if keras_side.skip_reason(workload):  # not installed, or imported on TensorFlow already
        pytest.skip(keras_side.skip_reason(workload))
    train = keras_side.keras_run(workload, steps_per_execution=2, most=4)
    model = train.model
    variables = workload.module.init(jax.random.key(0), workload.batch["tokens"],
                                     workload.batch["lengths"])
    jax_shapes = sorted(tuple(a.shape) for a in jax.tree.leaves(variables["params"]))
    keras_shapes = sorted(tuple(w.shape) for w in model.trainable_weights)
    assert keras_shapes == jax_shapes  # embedding, W_xh + b, W_hh, W_hy + b_y
    assert model.count_params() == sum(math.prod(s) for s in jax_shapes)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Embedding", "Dropout", "SimpleRNN", "Dropout", "Dense"]
    before = int(model.optimizer.iterations.value)  # read now: fit donates the state
    train(3)
    assert int(model.optimizer.iterations.value) == before + 3
    with pytest.raises(ValueError, match="1..4 steps per call"):
        train(5)


@pytest.mark.parametrize("items, message", [
    (["vgg=64"], "unknown model 'vgg'"),
    (["alexnet_xla=64"], "unknown model 'alexnet_xla'"),
    (["alexnet=0"], "batch size of alexnet must be a positive integer, got 0"),
    (["lenet=-8"], "batch size of lenet must be a positive integer, got -8"),
    (["rnn=1.5"], "batch size of rnn must be a positive integer, got '1.5'"),
    (["alexnet"], "is not NAME=SIZE"),
])
def test_batch_sizes_are_validated(items, message):
    with pytest.raises(ValueError, match=message):
        workloads.parse_batch_sizes(items)
    with pytest.raises(ValueError, match="positive integer"):
        workloads.build("lenet", tiny=True, batch_size=0)


def test_batch_size_override_reaches_the_workload_and_the_report():
    assert workloads.parse_batch_sizes(["alexnet=1024", " lenet=4096"]) == {
        "alexnet": 1024, "lenet": 4096}
    assert workloads.build("alexnet_xla", tiny=True, batch_size=3).batch["image"].shape[0] == 3
    assert workloads.build("rnn", tiny=True, batch_size=5).batch["tokens"].shape == (5, 8)
    options = suite.Options(sections=("models",), models=("lenet",), tiny=True, torch="no",
                            batch_sizes={"lenet": 6})
    results = suite.run(options, log=lambda line: None)
    row, = results["models"]
    assert row["batch_size"] == 6 and "batch 6" in row["what"]
    assert "Batch sizes set by --batch_sizes (not the issue's CPU sizes): lenet 6." in \
        report.markdown(results)
    assert json.loads(report.to_json(results))["options"]["batch_sizes"] == {"lenet": 6}


def test_a_failing_workload_is_recorded_and_the_others_still_run():
    def row(name):
        if name == "alexnet":
            raise RuntimeError("RESOURCE_EXHAUSTED: out of memory\nmore detail")
        return {"name": name}

    rows, failures, lines = [], [], []
    suite._each(["lenet", "alexnet", "rnn"], "models", rows, failures, lines.append, row)
    assert rows == [{"name": "lenet"}, {"name": "rnn"}]
    assert failures == [{"section": "models", "name": "alexnet",
                         "error": "RuntimeError: RESOURCE_EXHAUSTED: out of memory"}]
    assert "alexnet failed" in lines[0]


def test_training_takes_exactly_n_steps_grouped_as_the_loop_groups_them():
    run = workloads.jax_run(workloads.build("lenet", tiny=True), steps_per_call=3)
    assert run.steps_per_call == 3 and int(run.state().step) == 3  # the first call
    run.train(7)  # two calls of 3 steps, then one single step
    run.train_single(2)
    assert int(run.state().step) == 12 and math.isfinite(run.loss())


def test_workload_sizes_are_the_issues():
    sizes = {name: workloads.build(name) for name in workloads.NAMES}
    assert sizes["lenet"].batch["image"].shape == (128, 32, 32, 1)
    assert sizes["alexnet"].batch["image"].shape == (16, 227, 227, 3)
    assert sizes["rnn"].batch["tokens"].shape == (64, 200)
    assert sizes["rnn"].module.vocab_size == 10_000 and sizes["rnn"].module.hidden_size == 128


def test_lesson_batches_are_the_loops_batches():
    images = np.zeros((10, 28, 28), np.uint8)
    batch = input_lesson.finish(images, np.arange(10), np.random.default_rng(0))
    assert batch["image"].shape == (10, 32, 32, 1) and batch["image"].dtype == np.float32
    assert set(batch) == {"image", "label", "mask"}


# -- the speed work keeps the results ---------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [1, 2 * 7 * 7 * 8 * 4])  # slices of 1 and 2
def test_conv_in_batch_chunks_equals_one_conv_and_its_gradient(monkeypatch, chunk_bytes):
    monkeypatch.setattr(kernels, "CHUNK_OUTPUT_BYTES", chunk_bytes)
    x = jax.random.normal(jax.random.key(0), (6, 35, 35, 3))
    w = jax.random.normal(jax.random.key(1), (11, 11, 3, 8))
    loss = lambda impl: lambda x, w: jnp.sum(jnp.sin(kernels.conv2d(x, w, 4, 1, impl)))  # noqa: E731
    for ours, ref in zip(jax.value_and_grad(loss("xla_chunks"), (0, 1))(x, w),
                         jax.value_and_grad(loss("xla"), (0, 1))(x, w)):
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
            # float32 sums of 363 products in another order: up to ~1.5e-6 of the largest
            # value apart (4.6e-5 on values up to 33 with an AVX2 CPU's kernels)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_conv_method_per_backend(monkeypatch):
    conv1 = ((16, 227, 227, 3), (11, 11, 3, 96), 4, 0)   # AlexNet CONV1
    conv3 = ((16, 13, 13, 256), (3, 3, 256, 384), 1, 1)  # AlexNet CONV3
    assert kernels.conv_method(*conv1) == "xla_chunks" == kernels.conv_method(*conv3)
    assert kernels.conv_method((128, 32, 32, 1), (5, 5, 1, 6), 1, 0) == "rows"  # LeNet CONV1
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert kernels.conv_method(*conv1) == "xla_s2d" and kernels.conv_method(*conv3) == "xla"
    assert kernels.conv_method((8, 64, 64, 64), (3, 3, 64, 64), 2, 1) == "xla"  # many channels


@pytest.mark.parametrize("shape, kernel, stride, padding, method", [
    ((2, 32, 32, 1), (5, 5, 1, 6), 1, 0, "rows"),          # LeNet CONV1
    ((2, 14, 14, 6), (5, 5, 6, 16), 1, 0, "rows"),         # LeNet CONV2
    ((2, 9, 11, 3), (3, 3, 3, 4), 1, 1, "rows"),           # padded, not square
    ((2, 35, 35, 3), (11, 11, 3, 8), 4, 0, "im2col_s2d"),  # AlexNet CONV1, smaller
    ((2, 9, 9, 4), (3, 3, 4, 5), 1, 1, "im2col"),
    ((2, 17, 17, 2), (5, 5, 2, 3), 2, 2, "rows_s2d"),      # stride 2 with padding
    ((2, 16, 16, 2), (3, 3, 2, 3), 3, 1, "xla_s2d"),       # stride 3, kernel < stride*2
])
def test_conv_methods_equal_xla_convolution_and_its_gradient(shape, kernel, stride, padding,
                                                             method):
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), kernel)

    def loss(f):
        return lambda x, w: jnp.sum(jnp.sin(f(x, w)))

    ref = lambda x, w: kernels.conv2d(x, w, stride, padding, "xla")  # noqa: E731
    fast = lambda x, w: kernels.conv2d(x, w, stride, padding, method)  # noqa: E731
    close = lambda a, b: np.testing.assert_allclose(  # noqa: E731 - float32 sums, reordered
        a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()))
    both = jax.jit(lambda x, w: [(f(x, w), jax.grad(loss(f), (0, 1))(x, w)) for f in (fast, ref)])
    (y, grads), (ref_y, ref_grads) = both(x, w)
    close(y, ref_y)
    for a, b in zip(grads, ref_grads):
        close(a, b)


@pytest.mark.parametrize("shape, window, stride", [
    ((2, 28, 28, 6), 2, 2), ((2, 55, 55, 5), 3, 2), ((1, 13, 13, 4), 3, 2), ((1, 7, 9, 2), 3, 3),
    ((1, 6, 9, 2), 3, 3)])  # 28/2 and 6x9/3 tile the input (interleaved shares)
def test_max_pool_equals_reduce_window_and_its_gradient(shape, window, stride):
    x = jax.random.normal(jax.random.key(2), shape)  # no ties: gradients must agree exactly

    def ref(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1),
                                     (1, stride, stride, 1), "VALID")

    fast = lambda x: kernels.max_pool(x, window, stride)  # noqa: E731
    both = jax.jit(lambda x: [(f(x), jax.grad(lambda x: jnp.sum(jnp.cos(f(x)) * 3))(x))
                              for f in (fast, ref)])
    (y, grad), (ref_y, ref_grad) = both(x)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6)


@pytest.mark.parametrize("shape, window, stride", [
    ((2, 8, 8, 3), 2, 2), ((2, 13, 13, 3), 3, 2), ((1, 6, 9, 2), 3, 3)])
def test_max_pool_gradient_splits_dy_among_tied_inputs(shape, window, stride):
    x = jnp.round(jnp.maximum(jax.random.normal(jax.random.key(2), shape), 0.0))
    x = x.at[:, :4, :4].set(0.5)  # a few values only: many windows tie, some wholly
    y, pull = jax.vjp(lambda x: kernels.max_pool(x, window, stride), x)
    dy = jax.random.normal(jax.random.key(3), y.shape)
    x, y, dy = np.asarray(x), np.asarray(y), np.asarray(dy)
    expected = np.zeros_like(x)  # each window's dy, shared by the inputs equal to its max
    for b, o, p, c in np.ndindex(y.shape):
        rows, cols = slice(o * stride, o * stride + window), slice(p * stride, p * stride + window)
        ties = x[b, rows, cols, c] == y[b, o, p, c]
        expected[b, rows, cols, c] += np.where(ties, dy[b, o, p, c] / ties.sum(), 0.0)
    assert (expected != 0).sum() > np.count_nonzero(dy)  # the test has ties to split
    np.testing.assert_allclose(pull(jnp.asarray(dy))[0], expected, rtol=1e-6, atol=1e-7)


def test_max_pool_counts_ties_beyond_what_bfloat16_can_count():
    x = jnp.zeros((1, 17, 17, 1), jnp.bfloat16)  # one window, 289 tied inputs
    _, pull = jax.vjp(lambda x: kernels.max_pool(x, 17, 17), x)
    dx = pull(jnp.ones((1, 1, 1, 1), jnp.bfloat16))[0]
    assert float(jnp.sum(dx.astype(jnp.float32))) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("layers, shape", [
    (lenet_layers(10), (32, 32, 1)),
    (alexnet_layers()[:10], (67, 67, 3)),  # AlexNet's CONV/POOL/NORM part, on a small image
])
@pytest.mark.parametrize("background", [False, True])
def test_fast_cnn_equals_the_xla_reference_model(layers, shape, background):
    model = cnn.SequentialCNN(layers, shape)
    reference = dataclasses.replace(model, layers=tuple(
        dataclasses.replace(layer, impl="xla") if hasattr(layer, "impl") else layer
        for layer in model.layers))
    x = jax.random.normal(jax.random.key(1), (2, *model.input_shape))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    if background:  # a blank half and positive biases: whole pooling windows tie
        x = x.at[:, :, :shape[1] // 2].set(0.0)
        variables = jax.tree_util.tree_map_with_path(
            lambda path, v: jnp.full_like(v, 0.1) if "bias" in jax.tree_util.keystr(path)
            else v, variables)
    shapes = lambda m: jax.tree.map(jnp.shape, jax.eval_shape(m.init, jax.random.key(0), x))  # noqa: E731
    assert shapes(model) == shapes(reference)  # the same parameters (values: test below)

    @jax.jit
    def outputs_and_grads(variables):
        return [jax.value_and_grad(lambda v, m=m: jnp.sum(jnp.sin(m.apply(v, x))))(variables)
                for m in (model, reference)]

    (value, grads), (ref_value, ref_grads) = outputs_and_grads(variables)
    np.testing.assert_allclose(value, ref_value, rtol=1e-4)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * float(jnp.abs(b).max()))


def test_fast_conv_layer_initializes_exactly_like_flax_conv():
    layers = (cnn.Conv("C1", 4, 3), cnn.MaxPool("P1", 2, 2), cnn.Conv("C2", 3, 3, stride=2),
              cnn.Dense("FC", 5, relu=False))
    fast = cnn.SequentialCNN(layers, (12, 12, 2))
    reference = cnn.SequentialCNN(tuple(dataclasses.replace(layer, impl="xla")
                                        if hasattr(layer, "impl") else layer
                                        for layer in layers), (12, 12, 2))
    x = jnp.zeros((1, 12, 12, 2))
    a, b = (m.init(jax.random.key(3), x) for m in (fast, reference))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert all(bool((u == v).all()) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru"])
def test_split_scan_gradient_equals_autodiff_of_the_plain_scan(cell):
    module = rnn.make_cell(cell, 8)
    x = jax.random.normal(jax.random.key(1), (3, 7, 5))
    mask = jnp.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5], bool)
    variables = module.init(jax.random.key(0), x, method=module.project)
    h0 = jax.random.normal(jax.random.key(2), (3, 8))

    def loss(variables, x, h0, plain):
        def f(m):
            step = m.recurrence()
            if plain:  # any function that is not a Recurrence takes the lax.scan path
                step = (lambda s: lambda carry, xp: s(carry, xp))(step)
            carry, hs = rnn.masked_scan(step, m.initial_carry(h0), m.project(x), mask)
            return jnp.sum(jnp.sin(m.hidden(carry))) + jnp.sum(jnp.cos(hs) * jnp.arange(8))
        return module.apply(variables, method=f)

    both = jax.jit(lambda *a: [jax.value_and_grad(loss, (0, 1, 2))(*a, p) for p in (False, True)])
    (value, fast), (plain_value, plain) = both(variables, x, h0)
    assert float(value) == float(plain_value)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bfloat16_models_compute_in_bfloat16_and_score_in_float32():
    for name in workloads.NAMES:
        workload = workloads.build(name, tiny=True, dtype=jnp.bfloat16)
        inputs = _inputs(workload.batch)
        variables = jax.eval_shape(workload.module.init, jax.random.key(0), *inputs)
        jaxpr = jax.make_jaxpr(workload.module.apply)(variables, *inputs)
        assert jaxpr.out_avals[0].dtype == jnp.float32
        assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
        matmuls = [e for e in _all_eqns(jaxpr.jaxpr)
                   if e.primitive.name in ("dot_general", "conv_general_dilated")]
        assert matmuls and all(e.outvars[0].aval.dtype == jnp.bfloat16 for e in matmuls), name


def _all_eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in eqn.params.values():
            inner = getattr(sub, "jaxpr", None)
            if inner is not None:
                yield from _all_eqns(getattr(inner, "jaxpr", inner))


def _inputs(batch):
    return (batch["image"],) if "image" in batch else (batch["tokens"], batch["lengths"])


def test_background_prefetch_keeps_order_errors_and_stops():
    assert list(background(iter(range(50)), size=2)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise RuntimeError("disk gone")

    it = background(failing())
    assert [next(it), next(it)] == [1, 2]
    with pytest.raises(RuntimeError, match="disk gone"):
        next(it)
    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = background(endless(), size=2)
    next(it)
    it.close()
    import time
    time.sleep(0.5)
    assert len(produced) < 10  # stopped a few items ahead, not at the end


def test_host_section_times_an_untuned_and_a_tuned_fresh_process():
    from jaxnets.benchmark import host
    row = host.measure("lenet", {"tiny": True, "reps": 1}, pairs=1)
    assert row["off"].median > 0 and row["on"].median > 0 and row["off"].reps == 1
    # off is a process as it starts (XLA:CPU's async dispatch); on is tune_host's
    assert row["async_dispatch"] == {"off": True, "on": False}


def test_host_tuning_is_idempotent():
    from jaxnets import runtime_options
    first = runtime_options.tune_host()
    assert first == runtime_options.tune_host() and first.startswith("malloc:")


@pytest.mark.parametrize("jax_started", [False, True])
def test_host_tuning_runs_xla_cpu_programs_on_the_caller_if_jax_has_not_started(jax_started):
    code = ("import jax\n" + ("jax.devices()\n" if jax_started else "") +
            "from jaxnets import runtime_options\n"
            "print(runtime_options.tune_host())\n"
            "print(jax.config.values['jax_cpu_enable_async_dispatch'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    if jax_started:  # too late for the CPU client: said, and left as it was
        assert "left async" in out[0] and out[1] == "True"
    else:
        assert "on the calling thread" in out[0] and out[1] == "False"


def test_step_compiler_options_keep_every_bit_and_drop_the_parameter_copies():
    """XLA:CPU's copy insertion with region analysis and LLVM level 1 (runtime_options)
    change which buffers are copied and how fast code compiles, never what is computed:
    a few steps give the same bits as XLA's defaults."""
    import re

    from jaxnets import runtime_options
    from jaxnets.train.config import default_config
    from jaxnets.train.model_api import as_model
    from jaxnets.train.optim import make_optimizer
    from jaxnets.train.state import create_state
    from jaxnets.train.steps import train_step

    config = default_config()
    config.optimizer, config.weight_decay = "momentum", 5e-4
    tx, _ = make_optimizer(config, total_steps=10)
    model = as_model(LeNet(num_classes=10))
    batch = {"image": jax.random.normal(jax.random.key(0), (8, 32, 32, 1)),
             "label": jnp.arange(8) % 10}
    options = runtime_options.step_compiler_options()
    assert options == {"xla_cpu_copy_insertion_use_region_analysis": True,  # tests: on CPU
                       "xla_backend_optimization_level": 1}
    params, programs = [], []
    for opts in (None, options):
        step = jax.jit(train_step, donate_argnums=0, compiler_options=opts)
        state = create_state(model, tx, batch, seed=0)
        programs.append(step.lower(state, batch).compile().as_text())
        for _ in range(3):
            state, _, _ = step(state, batch)
        params.append(jax.device_get(state.params))
    jax.tree.map(np.testing.assert_array_equal, params[0], params[1])
    parameter_copies = [len(re.findall(r"copy\(%state_params", p)) for p in programs]
    assert parameter_copies[1] == 0, parameter_copies


def test_startup_child_times_the_loops_own_first_call(tmp_path):
    from jaxnets.benchmark import startup
    cold = startup.measure("rnn_translate", str(tmp_path))  # numpy data: no TF, ~3 s
    assert "error" not in cold, cold
    marks = [cold[k] for k in ("imports", "data", "state", "first_step", "total")]
    assert marks == sorted(marks) and 0 < marks[0]
    assert any(tmp_path.iterdir())  # the compiled programs were kept for a warm start
    assert "error" in startup.measure("no_such_preset")
