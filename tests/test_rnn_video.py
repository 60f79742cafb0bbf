"""Frame-level video classification (many-to-many, synced): the digit_video task, the
CNN + RNN frame classifier, and what the recurrence buys on the memory frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnets.data import digit_video as dv
from jaxnets.data import split_cache
from jaxnets.models import MODELS, rnn_modes


def prototypes(variants: int = 1, seed: int = 0):
    """uint8[10 * variants, 28, 28, 1] digits, labels: class k is a random 12x12 pattern
    of its own, of brightness 20 * (k + 1) + the variant, far enough from the edges that a
    shift of up to MAX_SHIFT cuts nothing; its variants differ in a few pixels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), variants)
    patterns = rng.random((10, 12, 12)) < 0.5
    images = np.zeros((len(labels), 28, 28, 1), np.uint8)
    for i, k in enumerate(labels):
        pattern = patterns[k] ^ (rng.random((12, 12)) < 0.05)
        images[i, 8:20, 8:20, 0] = pattern * (20 * (k + 1) + i % variants)
    return images, labels


def real_frames(arrays):
    """(clip, t) of every frame before its clip's end."""
    return [(i, t) for i, n in enumerate(arrays["lengths"]) for t in range(int(n))]


def _centre(frame):
    """(row, column) of a frame's centre of brightness."""
    rows, cols = np.nonzero(frame)
    weights = frame[rows, cols]
    return (rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum()


# -- the task -----------------------------------------------------------------------------


def test_clips_have_fixed_shapes_their_lengths_and_one_order_per_seed():
    images, labels = prototypes()
    clips = dv.digit_video(images, labels, count=40, seed=3)
    assert clips["image"].shape == (40, dv.MAX_FRAMES, 28, 28, 1)
    assert clips["image"].dtype == np.float32 and 0 <= clips["image"].min() <= 1
    assert clips["image"].max() <= 1
    lengths = clips["lengths"]
    assert lengths.min() >= dv.MIN_FRAMES and lengths.max() <= dv.MAX_FRAMES
    assert len(set(lengths.tolist())) > 3  # lengths vary
    padded = np.arange(dv.MAX_FRAMES)[None, :] >= lengths[:, None]
    np.testing.assert_array_equal(clips["target_mask"], (~padded).astype(np.float32))
    assert not clips["image"][padded].any() and not clips["memory"][padded].any()
    assert not clips["targets"][padded].any()
    real = clips["targets"][~padded]
    assert real.min() >= 0 and real.max() <= dv.NONE
    again = dv.digit_video(images, labels, count=40, seed=3)
    for key in clips:
        np.testing.assert_array_equal(clips[key], again[key])
    other = dv.digit_video(images, labels, count=40, seed=4)
    assert not np.array_equal(other["image"], clips["image"])


def test_visible_frames_show_their_digit_moving_a_few_pixels():
    images, labels = prototypes()
    sums = {int(k): images[k].sum() / 255.0 for k in range(10)}
    clips = dv.digit_video(images, labels, count=60, seed=0)
    steps = []
    for i, t in real_frames(clips):
        if clips["memory"][i, t]:
            continue
        frame, k = clips["image"][i, t, ..., 0], int(clips["targets"][i, t])
        assert k != dv.NONE
        np.testing.assert_allclose(frame.sum(), sums[k], rtol=1e-5)  # whole: it is digit k
        if t and not clips["memory"][i, t - 1] and clips["targets"][i, t - 1] == k:
            before = clips["image"][i, t - 1, ..., 0]  # the same digit, or a new k
            steps.append(np.abs(np.array(_centre(frame)) - _centre(before)).max())
    steps = np.array(steps)
    assert (steps > 0.5).sum() > 50  # digits really move
    assert (steps <= dv.MAX_SPEED + 1e-6).mean() > 0.85  # a few pixels (or a new digit)


def test_a_digit_moves_at_most_max_speed_and_stays_near_the_centre():
    for seed in range(20):
        mover = dv.Mover(np.random.default_rng(seed))
        for _ in range(50):
            before = mover.pos.copy()
            mover.step()
            assert np.abs(mover.pos).max() <= dv.MAX_SHIFT
            assert np.abs(mover.pos - before).max() <= dv.MAX_SPEED


def test_memory_frames_are_labelled_with_the_last_digit_seen():
    images, labels = prototypes()
    clips = dv.digit_video(images, labels, count=200, seed=1)
    kinds = {"blank": 0, "hidden": 0, "none": 0, "remembered": 0}
    for i, length in enumerate(clips["lengths"]):
        seen = dv.NONE
        for t in range(int(length)):
            target = int(clips["targets"][i, t])
            if not clips["memory"][i, t]:
                seen = target  # a visible frame: its own digit
                continue
            assert target == seen, (i, t)
            kinds["none" if seen == dv.NONE else "remembered"] += 1
            frame = clips["image"][i, t, ..., 0]
            kinds["blank" if not frame.any() else "hidden"] += 1
            if frame.any():  # noise over most of it: values no digit here has
                assert len(np.unique(frame)) > dv.HIDDEN_SIDE ** 2 // 2
    assert min(kinds.values()) > 30, kinds
    share = (kinds["none"] + kinds["remembered"]) / clips["target_mask"].sum()
    assert 0.15 < share < 0.4  # a good part of the frames needs memory


def test_test_clips_use_only_test_digits(monkeypatch):
    from jaxnets import data
    images, labels = prototypes(variants=2)
    splits = {"train": labels < 5, "test": labels >= 5}  # classes tell the splits apart
    monkeypatch.setattr(split_cache, "whole_split", lambda name, split, data_dir: {
        "image": images[splits[split]], "label": labels[splits[split]]})
    monkeypatch.setattr(dv, "CLIPS", {"train": 50, "test": 30})
    ds = data.get_dataset("digit_video", batch_size=8, eval_batch_size=16)
    assert (ds.kind, ds.num_classes, ds.input_shape) == ("sequence", 11, (20, 28, 28, 1))
    assert (ds.num_train, ds.num_eval, ds.vocab) == (50, 30, None)
    for arrays, allowed in ((ds.train, {0, 1, 2, 3, 4}), (ds.eval, {5, 6, 7, 8, 9})):
        seen = {int(arrays["targets"][i, t]) for i, t in real_frames(arrays)}
        assert seen - {dv.NONE} == allowed
    again = data.get_dataset("digit_video", batch_size=8, eval_batch_size=16)
    np.testing.assert_array_equal(again.eval["image"], ds.eval["image"])
    batch = next(ds.eval_batches())
    assert batch["image"].shape == (16, 20, 28, 28, 1) and batch["memory"].shape == (16, 20)
    with pytest.raises(ValueError, match="max_length does not apply to digit_video"):
        data.get_dataset("digit_video", batch_size=8, max_length=5)


# -- the model ----------------------------------------------------------------------------


def small_model(recurrent=True, frames=12):
    return MODELS["rnn_frame_classifier"](num_classes=11, input_shape=(frames, 28, 28, 1),
                                          embed_dim=32, hidden_size=32,
                                          conv_channels=(8, 16), recurrent=recurrent)


@pytest.fixture(scope="module")
def clips():
    images, labels = prototypes()
    return dv.digit_video(images, labels, count=3, seed=0, min_frames=12, max_frames=12)


def built(clips, recurrent):
    """(params, jitted apply) of a small model on `clips`."""
    from jaxnets import runtime_options
    model = small_model(recurrent)
    init = jax.jit(model.init, compiler_options=runtime_options.init_compiler_options())
    params = init(jax.random.key(0), clips["image"], clips["lengths"])  # 0.6 s, not 3.8
    return params, jax.jit(model.apply)


@pytest.fixture(scope="module")
def rnn(clips):
    return built(clips, recurrent=True)


def test_frame_classifier_scores_every_frame_with_one_set_of_weights(clips, rnn):
    params, apply = rnn
    short = jax.eval_shape(small_model().init, jax.random.key(0), clips["image"][:, :5],
                           np.full(3, 5))
    assert jax.tree.map(jnp.shape, short) == jax.tree.map(jnp.shape, params)  # none per step
    assert params["params"]["rnn"]["cell"]["W_hh"].shape == (32, 32)  # the one W_hh
    out = apply(params, clips["image"], clips["lengths"])
    assert out.shape == (3, 12, 11) and out.dtype == jnp.float32
    first = apply(params, clips["image"][:, :5], np.full(3, 5))
    np.testing.assert_allclose(first, out[:, :5], atol=1e-5)  # the same step, over again
    cut = apply(params, clips["image"], np.array([12, 7, 3]))  # later frames: padding
    np.testing.assert_allclose(cut[1, :7], out[1, :7], atol=1e-5)
    zero_state = params["params"]["W_hy"]["bias"]  # y = W_hy 0 + b on a padded frame
    np.testing.assert_allclose(cut[2, 3:], np.broadcast_to(zero_state, (9, 11)), atol=1e-6)


def test_only_the_recurrent_model_carries_a_frame_forward(clips, rnn):
    images, _ = prototypes()
    changed = clips["image"].copy()
    changed[:, 0] = images[3] / 255.0  # another first frame
    assert not np.array_equal(changed[:, 0], clips["image"][:, 0])
    for recurrent, (params, apply) in ((True, rnn), (False, built(clips, False))):
        assert ("rnn" in params["params"]) == recurrent
        a, b = apply(params, clips["image"], clips["lengths"]), apply(params, changed,
                                                                      clips["lengths"])
        assert np.abs(a[:, 0] - b[:, 0]).max() > 1e-4  # frame 0's own scores move
        later = np.abs(a[:, 1:] - b[:, 1:]).max()
        assert later > 1e-4 if recurrent else later == 0.0


def test_a_frame_classifier_that_cannot_work_is_refused_when_built():
    with pytest.raises(ValueError, match="hidden_size=0"):
        rnn_modes.RNNFrameClassifier(hidden_size=0)


# -- what memory buys: the RNN against the same CNN without recurrence ---------------------


@pytest.mark.slow
def test_the_rnn_beats_a_per_frame_classifier_on_the_memory_frames(tmp_path):
    from jaxnets.data.arrays import ArrayData
    from jaxnets.train import fit
    from jaxnets.train.experiment import frame_measures
    from jaxnets.train.model_api import as_model
    from jaxnets.train.rundir import RunDir
    images, labels = prototypes(variants=3)
    make = lambda count, seed: dv.digit_video(images, labels, count, seed, 5, 8)  # noqa: E731
    data = ArrayData(make(480, 0), make(96, 1), batch_size=16, eval_batch_size=48,
                     num_classes=11, input_shape=(8, 28, 28, 1))
    config = {"num_steps": 300, "learning_rate": 5e-3, "log_every_steps": 1000,
              "checkpoint_every_steps": 0, "progress": False, "grad_clip_norm": 1.0}
    scores = {}
    for recurrent in (True, False):  # the same CNN, the same steps; one remembers
        model = as_model(small_model(recurrent, frames=8))
        run = RunDir(str(tmp_path / str(recurrent)))
        result = fit(model, data, config, run, measures=frame_measures(model, data, run))
        scores[recurrent] = (result.eval["accuracy"], result.summary["memory_frame_accuracy"])
        assert (tmp_path / str(recurrent) / "clip.png").stat().st_size > 1000
    (rnn_all, rnn_memory), (frame_all, frame_memory) = scores[True], scores[False]
    assert rnn_memory > 0.85 and rnn_all > 0.9, scores  # measured: 0.96, 0.97
    assert frame_all > 0.75, scores  # it learned the digits (measured: 0.87; memory 0.44)
    assert rnn_memory > frame_memory + 0.3, scores  # the per-frame model can only guess
