"""tf.data pipelines on fixture-built embedded datasets: order, coverage, shapes, sharding."""

import collections
import itertools
import subprocess
import sys

import numpy as np
import pytest

import data_fixtures
from jaxnets import data


@pytest.fixture(scope="module")
def data_dir():
    return data_fixtures.prepared_data_dir()


def digits(data_dir, **kwargs):
    options = dict(batch_size=16, eval_batch_size=12, data_dir=data_dir)
    return data.get_dataset("mnist5k", **{**options, **kwargs})


def sentences(data_dir, **kwargs):
    options = dict(batch_size=8, eval_batch_size=5, data_dir=data_dir)
    return data.get_dataset("rt_sentences", **{**options, **kwargs})


def fingerprints(batches, key="image"):
    """One hashable value per real row, in order."""
    return [(batch[key][i].tobytes(), int(batch["label"][i]))
            for batch in batches for i in np.flatnonzero(batch["mask"])]


def test_image_batches_have_the_contract_keys_shapes_and_dtypes(data_dir):
    ds = digits(data_dir)
    assert (ds.kind, ds.num_classes, ds.input_shape) == ("image", 10, (28, 28, 1))
    assert (ds.num_train, ds.num_eval) == (120, 30) and ds.steps_per_epoch == 120 // 16
    batches = list(ds.train_epoch(0))
    assert len(batches) == ds.steps_per_epoch
    batch = batches[0]
    assert set(batch) == {"image", "label", "mask"}
    assert batch["image"].shape == (16, 28, 28, 1) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32 and batch["mask"].dtype == np.float32
    assert (batch["mask"] == 1).all()
    background = (0 - 0.1307) / 0.3081  # a 0 pixel after MNIST normalization
    assert batch["image"].min() == pytest.approx(background, abs=1e-5)


def test_shuffle_is_reproducible_and_differs_between_epochs_and_seeds(data_dir):
    ds = digits(data_dir)
    epoch0 = fingerprints(ds.train_epoch(0))
    assert fingerprints(ds.train_epoch(0)) == epoch0                     # same (seed, epoch)
    assert fingerprints(digits(data_dir).train_epoch(0)) == epoch0       # a new process
    assert fingerprints(ds.train_epoch(1)) != epoch0                     # next epoch
    assert fingerprints(digits(data_dir, seed=1).train_epoch(0)) != epoch0
    assert len(set(epoch0)) == len(epoch0) == ds.steps_per_epoch * 16    # no repeats


def test_resume_mid_epoch_matches_skipping(data_dir):
    ds = digits(data_dir, augment=True)
    full = list(ds.train_epoch(3))
    resumed = list(ds.train_epoch(3, start_step=4))
    assert len(resumed) == len(full) - 4
    for a, b in zip(full[4:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])  # augmentation included
    with pytest.raises(ValueError, match="start_step"):
        ds.train_epoch(0, start_step=ds.steps_per_epoch + 1)  # checked at once, not lazily


def test_one_stream_of_epochs_gives_each_epochs_batches_bitwise(data_dir):
    ds = digits(data_dir, augment=True)
    spe = ds.steps_per_epoch
    expected = [*ds.train_epoch(2, start_step=3), *ds.train_epoch(3), *ds.train_epoch(4)]
    stream = ds.train_epochs(2, start_step=3, epochs_per_pipeline=2)  # 4 is a new pipeline
    got = list(itertools.islice(stream, 2 * spe - 3 + spe))
    assert len(got) == len(expected)
    for a, b in zip(expected, got):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])  # shuffle and augmentation


def test_eval_covers_every_example_once_with_masks(data_dir):
    ds = digits(data_dir)
    batches = list(ds.eval_batches())
    assert len(batches) == ds.eval_steps == 3  # 30 examples in batches of 12: 12, 12, 6 + 6 pad
    assert all(b["image"].shape == (12, 28, 28, 1) for b in batches)
    assert batches[-1]["mask"].tolist() == [1] * 6 + [0] * 6
    assert (batches[-1]["image"][6:] == 0).all() and (batches[-1]["label"][6:] == 0).all()
    seen = fingerprints(batches)
    raw = fingerprints(digits(data_dir, eval_batch_size=30).eval_batches())
    assert len(seen) == 30 and collections.Counter(seen) == collections.Counter(raw)
    assert len(set(seen)) == 30


def test_process_shards_are_disjoint_cover_the_split_and_step_together(data_dir):
    shards = [digits(data_dir, eval_batch_size=4, process_index=i, process_count=4)
              for i in range(4)]
    assert [s.num_eval for s in shards] == [8, 8, 7, 7]  # 30 eval examples over 4 processes
    assert len({s.eval_steps for s in shards}) == 1 and shards[0].eval_steps == 2
    assert len({s.steps_per_epoch for s in shards}) == 1
    evals = [fingerprints(s.eval_batches()) for s in shards]
    assert [len(list(s.eval_batches())) for s in shards] == [2] * 4
    everything = [row for rows in evals for row in rows]
    assert len(everything) == len(set(everything)) == 30
    trains = [set(fingerprints(s.train_epoch(0))) for s in shards]
    assert all(a.isdisjoint(b) for i, a in enumerate(trains) for b in trains[i + 1:])


def test_lenet_pads_28_to_32_and_alexnet_resizes_to_227_rgb(data_dir):
    padded = next(digits(data_dir, image_shape=(32, 32, 1)).eval_batches())
    native = next(digits(data_dir).eval_batches())
    assert padded["image"].shape == (12, 32, 32, 1)
    np.testing.assert_array_equal(padded["image"][:, 2:30, 2:30], native["image"])
    border = (0 - 0.1307) / 0.3081
    np.testing.assert_allclose(padded["image"][:, :2], border, atol=1e-6)
    alex = digits(data_dir, image_shape=(227, 227, 3), batch_size=4, eval_batch_size=2)
    batch = next(alex.eval_batches())
    assert alex.input_shape == (227, 227, 3) and batch["image"].shape == (2, 227, 227, 3)
    np.testing.assert_array_equal(batch["image"][..., 0], batch["image"][..., 2])  # grey -> RGB
    assert batch["image"].max() > 2.0  # the bright block survived the resize


def test_augmentation_moves_pixels_but_keeps_labels(data_dir):
    plain = next(digits(data_dir).train_epoch(0))
    moved = next(digits(data_dir, augment=True).train_epoch(0))
    np.testing.assert_array_equal(plain["label"], moved["label"])  # same shuffle order
    assert not np.array_equal(plain["image"], moved["image"])
    with pytest.raises(ValueError, match="do not apply to image"):
        digits(data_dir, max_length=10)


def _bar_batch(n=64):
    """uint8 [n, 32, 32, 1]: a bright vertical bar through the centre of each image."""
    image = np.zeros((n, 32, 32, 1), np.uint8)
    image[:, 8:24, 15:17] = 255
    return {"image": image, "label": np.arange(n) % 10}


def _bar_geometry(image):
    """(row centroid, column centroid, angle of the bar from vertical in degrees)."""
    rows, cols = np.nonzero(image[..., 0].astype(np.float64) > 127)
    r, c = rows - rows.mean(), cols - cols.mean()
    angle = 0.5 * np.degrees(np.arctan2(2 * (r * c).mean(), (r * r).mean() - (c * c).mean()))
    return rows.mean(), cols.mean(), angle


@pytest.mark.parametrize("distort", [False, True])
def test_augment_batch_shifts_and_rotates_within_bounds(distort):
    from jaxnets.data import images
    import tensorflow as tf
    batch = _bar_batch()
    seed = tf.constant([7, 3], tf.int64)
    out = images.augment_batch(batch, seed, flip=False, distort=distort)
    again = images.augment_batch(batch, seed, flip=False, distort=distort)
    out_image = out["image"].numpy()
    np.testing.assert_array_equal(out_image, again["image"].numpy())  # stateless
    assert out_image.dtype == np.uint8 and out_image.shape == batch["image"].shape
    np.testing.assert_array_equal(out["label"], batch["label"])
    geometry = np.array([_bar_geometry(im) for im in out_image])
    shifts = geometry[:, :2] - 15.5
    assert np.abs(shifts).max() <= 4.5 and np.abs(shifts).std() > 1.0  # up to H/8 = 4
    angles = np.abs(geometry[:, 2])
    if distort:  # up to 10 degrees, and they really vary
        assert angles.max() <= images.MAX_ROTATION_DEGREES + 2 and angles.max() > 5
    else:  # whole-pixel shifts keep the bar exactly as it was
        assert angles.max() < 1e-9
        assert all((im > 0).sum() == 32 for im in out_image)


def test_text_batches_tokens_lengths_and_padding(data_dir):
    ds = sentences(data_dir)
    assert ds.kind == "text" and ds.num_classes == 2 and ds.vocab is not None
    batch = next(ds.train_epoch(0))
    assert set(batch) == {"tokens", "lengths", "label", "mask"}
    assert batch["tokens"].shape == (8, *ds.input_shape) and batch["tokens"].dtype == np.int32
    for row, length in zip(batch["tokens"], batch["lengths"]):
        assert (row[:length] != 0).all() and (row[length:] == 0).all()  # right-padded PAD
    texts = ds.eval_texts()
    eval_batches = list(ds.eval_batches())
    rows = [r for b in eval_batches for r, m in zip(b["tokens"], b["mask"]) if m]
    assert len(rows) == len(texts) == ds.num_eval
    assert [ds.vocab.decode(r) for r in rows] == [ds.vocab.decode(ds.vocab.encode(t)) for t in texts]


def test_text_splits_are_read_with_tfds_once_then_from_the_kept_numpy(tmp_path, monkeypatch):
    from jaxnets.data import split_cache

    data_fixtures.build(["rt_sentences"], tmp_path)
    first = sentences(str(tmp_path))
    kept = sorted(p.name for p in tmp_path.glob("rt_sentences/*/jaxnets-*.npz"))
    assert kept == ["jaxnets-test.npz", "jaxnets-train.npz"]

    def no_tfds(*args):
        raise AssertionError("read with TFDS again")
    monkeypatch.setattr(split_cache, "read_split", no_tfds)
    again = sentences(str(tmp_path))
    assert again.eval_texts() == first.eval_texts() and again.vocab.encode(
        " ".join(first.eval_texts())) == first.vocab.encode(" ".join(first.eval_texts()))
    for a, b in zip(first.train_epoch(1), again.train_epoch(1)):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_vocabulary_comes_from_the_train_split_only(data_dir):
    from jaxnets.data import rt_sentences

    ds = sentences(data_dir)
    split = {i: rt_sentences.split_of(i) for i, rating, _ in data_fixtures.rt_rows() if rating}
    in_train = [f"word{i}" for i, s in split.items() if s == "train"]
    in_test = [f"word{i}" for i, s in split.items() if s == "test"]
    assert in_test and all(ds.vocab.encode(w) == [1] for w in in_test)  # OOV
    assert all(ds.vocab.encode(w) != [1] for w in in_train)
    assert not ds.vocab.encode("word25") or ds.vocab.encode("word25") == [1]  # dropped: rating 0


def test_saved_vocabulary_gives_the_same_ids(data_dir, tmp_path):
    first = sentences(data_dir, vocab_size=30, max_length=6)
    assert len(first.vocab) == 30 and first.input_shape == (6,)
    first.vocab.save(tmp_path / "vocab.json")
    saved = data.Vocabulary.load(tmp_path / "vocab.json")
    again = sentences(data_dir, vocab=saved, vocab_size=20_000, max_length=6)  # cap >= size
    with pytest.raises(ValueError, match="more than vocab_size=10"):
        sentences(data_dir, vocab=saved, vocab_size=10)
    a, b = next(first.eval_batches()), next(again.eval_batches())
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert a["lengths"].max() <= 6  # truncated


def test_a_run_keeps_its_saved_vocabulary_only_when_it_resumes(data_dir, tmp_path):
    from jaxnets import configs
    from jaxnets.train.experiment import load_dataset, stage_run_files
    from jaxnets.train.rundir import RunDir
    config = configs.get("rnn_sentiment", overrides={
        "data_dir": data_dir, "vocab_size": 30, "max_length": 6})
    run = RunDir(str(tmp_path), primary=True)
    stale = data.Vocabulary(["<pad>", "<unk>", "stale"])  # left by a run that never saved
    stale.save(tmp_path / "vocab.json")
    assert len(load_dataset(config, run, resuming=True).vocab) == 3
    dataset = load_dataset(config, run, resuming=False)
    assert len(dataset.vocab) == 30  # built from the data again
    assert data.Vocabulary.load(tmp_path / "vocab.json").tokens == stale.tokens  # reads only
    stage_run_files(run, config, dataset)
    run.begin(config)  # saved for a resume once the run begins
    assert data.Vocabulary.load(tmp_path / "vocab.json").tokens == dataset.vocab.tokens
    (tmp_path / "vocab.json").write_text('{"tokens": [')
    with pytest.raises(ValueError, match=r"vocab.json is damaged .*new workdir"):
        load_dataset(config, run, resuming=True)


def test_length_buckets_cut_each_batch_to_its_bucket(data_dir):
    ds = sentences(data_dir, batch_size=2, eval_batch_size=1, length_buckets=(8, 12))
    widths = collections.Counter()
    for batch in list(ds.train_epoch(0)) + list(ds.eval_batches()):
        width = batch["tokens"].shape[1]
        assert width in (8, 12, ds.input_shape[0]) and batch["lengths"].max() <= width
        smaller = [w for w in (8, 12) if w < width]
        assert not smaller or batch["lengths"].max() > max(smaller)  # the smallest that fits
        widths[width] += 1
    assert len(widths) == 3, widths


def test_length_buckets_are_refused_for_several_processes(data_dir):
    with pytest.raises(ValueError, match="leave length_buckets out for a multi-process run"):
        sentences(data_dir, length_buckets=(4, 8), process_index=0, process_count=2)


def test_unknown_names_and_bad_arguments_fail_clearly(data_dir):
    with pytest.raises(ValueError, match="unknown dataset 'mnist6k'.*mnist5k"):
        data.get_dataset("mnist6k", batch_size=8)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        digits(data_dir, batch_size=1000)
    with pytest.raises(ValueError, match="process_index"):
        digits(data_dir, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="image_shape"):
        digits(data_dir, image_shape=(32, 32))


def test_pipeline_feeds_a_jitted_step_without_retracing(data_dir):
    import jax
    import jax.numpy as jnp

    from jaxnets.train.placement import prefetch_to_device

    traces = []

    def loss_fn(w, batch):
        logits = batch["image"].reshape(batch["image"].shape[0], -1) @ w
        losses = -jax.nn.log_softmax(logits)[jnp.arange(logits.shape[0]), batch["label"]]
        return (losses * batch["mask"]).sum() / batch["mask"].sum()

    @jax.jit
    def step(w, batch):
        traces.append(1)  # runs only while tracing
        loss, grad = jax.value_and_grad(loss_fn)(w, batch)
        return w - 0.05 * grad, loss

    ds = digits(data_dir)
    w = jnp.zeros((28 * 28, 10))
    losses = []
    for epoch in range(3):
        for batch in prefetch_to_device(ds.train_epoch(epoch)):
            w, loss = step(w, batch)
            losses.append(float(loss))
    eval_loss = jax.jit(loss_fn)
    mean_eval = np.mean([float(eval_loss(w, b)) for b in prefetch_to_device(ds.eval_batches())])
    assert len(traces) == 1  # fixed shapes: one compilation for all epochs
    assert losses[-1] < 0.5 * losses[0] and mean_eval < losses[0]


def test_tensorflow_is_imported_without_keras_and_the_pipelines_work(data_dir):
    code = ("import importlib.util, sys\n"
            "from jaxnets import data\n"
            "text = data.get_dataset('rt_sentences', batch_size=8, data_dir=sys.argv[1])\n"
            "images = data.get_dataset('mnist5k', batch_size=8, data_dir=sys.argv[1],\n"
            "                          image_shape=(227, 227, 3), augment=True)\n"
            "next(text.train_epoch(0)); next(images.train_epoch(0))\n"
            "assert 'tensorflow' in sys.modules and 'keras' not in sys.modules\n"
            "if importlib.util.find_spec('keras'):  # installed: still importable afterwards\n"
            "    import keras, tensorflow as tf; tf.keras.layers.Dense\n")
    subprocess.run([sys.executable, "-c", code, data_dir], check=True, timeout=300)
