"""The batch path (jaxnets/inference/): batched answers equal one-at-a-time ones and the plain
model's, inputs are read and checked as training read them, and predict answers files and
images with one line per input (or one line of error, exit 2)."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxnets.data import sequence_tasks as st
from jaxnets.data.tokenizer import build_vocabulary
from jaxnets.inference import Run, inputs, programs
from jaxnets.models import LeNet, rnn_modes

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
WORDS = "good bad film plot actors the a boring great witty".split()


def in_memory_run(module, example_inputs, vocab, sizes, source_vocab=None, max_batch=4):
    """A Run of a freshly initialised model (no workdir): the real module and parameters."""
    params = module.init(jax.random.key(0), *example_inputs)["params"]
    config = {"preset": "test", "model": type(module).__name__, "dataset": "mnist5k"}
    return Run("in-memory", config, module, params, vocab, sizes, source_vocab,
               max_batch=max_batch)


def texts(count, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 30)))) for _ in range(count)]


@pytest.fixture(scope="module")
def classifier():
    vocab = build_vocabulary(WORDS, 20)
    module = rnn_modes.RNNClassifier(vocab_size=len(vocab), hidden_size=16, embed_dim=8)
    return in_memory_run(module, (np.ones((1, 4), np.int32), np.ones(1, np.int32)), vocab,
                         {"input_shape": (20,), "num_classes": 2})


def test_buckets():
    assert [programs.row_bucket(n, 256) for n in (1, 2, 3, 200, 256)] == [1, 2, 4, 256, 256]
    assert programs.row_bucket(5, 4) == 4 and programs.row_bucket(70, 100) == 100
    assert programs.width_buckets(48) == (8, 16, 32, 48)
    assert programs.width_buckets(4) == (4,) and programs.width_buckets(8) == (8,)
    tokens, lengths = programs.pad_sequences([[3, 4], [5] * 9], (8, 16, 20))
    assert tokens.shape == (2, 16) and lengths.tolist() == [2, 9] and tokens[0, 2:].sum() == 0


def test_classify_batch_equals_one_at_a_time_and_the_plain_model(classifier):
    given = texts(11)  # 1..29 words: widths 8, 16 and 20 (truncated), chunks of 4 rows
    batch = classifier.classify_batch(given, top_k=2)
    alone = [classifier.classify(t) for t in given]
    assert [label for label, _ in alone] == [p.answer for p in batch]
    assert [p for _, p in alone] == pytest.approx([p.probability for p in batch], rel=1e-5)
    for text, prediction in zip(given, batch):  # the model on the text alone, unpadded
        ids = classifier.vocab.encode(text)[:20]
        logits = classifier.module.apply({"params": classifier.params}, np.array([ids]),
                                         np.array([len(ids)]))
        probs = np.asarray(jax.nn.softmax(logits[0]))
        assert prediction.answer == ("negative", "positive")[probs.argmax()]
        assert [p for _, p in prediction.top] == pytest.approx(sorted(probs)[::-1], rel=1e-5)
        assert prediction.truncated == (len(text.split()) > 20)
    with pytest.raises(ValueError, match="text 2 .* is empty"):
        classifier.classify_batch(["good", "  "])


def test_translate_caption_sample_and_images_batched_equal_single():
    seq2seq = in_memory_run(
        rnn_modes.Seq2Seq(st.NUMBER_SOURCE.size, st.NUMBER_TARGET.size, hidden_size=16,
                          embed_dim=8),
        (np.ones((1, 4), np.int32), np.ones(1, np.int32), np.ones((1, 3), np.int32),
         np.ones(1, np.int32)), st.NUMBER_TARGET, {"input_shape": (4,)}, st.NUMBER_SOURCE)
    numbers = ["0", "7", "12", "999", "1234", "0042", "9999", "305", "18"]
    batch = seq2seq.translate_batch(numbers)
    assert [p.answer for p in batch] == [seq2seq.translate(n) for n in numbers]
    assert batch[5] == seq2seq.translate_batch(["42"])[0]  # leading zeros dropped
    greedy = seq2seq.translate_batch(["1234"])[0]
    ids = seq2seq.vocab.ids(greedy.answer.split()) if greedy.answer else []
    assert 0 < greedy.probability <= 1 and len(ids) < seq2seq.translation_length()
    with pytest.raises(ValueError, match=r"input 2: '1 2' is not a whole number 0..9999 .*"
                                         r"\(and 2 more like it\)"):
        seq2seq.translate_batch(["3", "1 2", "-4", "10000"])

    captioner = in_memory_run(
        rnn_modes.RNNCaptioner(vocab_size=st.CAPTION_WORDS.size, input_shape=(28, 56, 1),
                               hidden_size=16, embed_dim=8),
        (np.zeros((1, 28, 56, 1), np.float32), np.ones((1, 3), np.int32), np.ones(1, np.int32)),
        st.CAPTION_WORDS, {"input_shape": (28, 56, 1)})
    strips = np.random.default_rng(0).uniform(size=(6, 28, 56, 1)).astype(np.float32)
    batch = captioner.caption_batch(strips)
    assert [p.answer for p in batch] == [captioner.caption(s) for s in strips]
    alone = [captioner.caption_batch(s[None])[0].probability for s in strips]
    assert [p.probability for p in batch] == pytest.approx(alone, rel=1e-5)

    lenet = in_memory_run(LeNet(num_classes=10), (np.zeros((1, 32, 32, 1), np.float32),),
                          None, {"input_shape": (32, 32, 1), "num_classes": 10})
    images = np.random.default_rng(1).integers(0, 256, (7, 32, 32, 1)).astype(np.uint8)
    batch = lenet.classify_images(images, top_k=3)
    alone = [lenet.classify_images(i[None], top_k=3)[0] for i in images]
    assert [p.answer for p in batch] == [p.answer for p in alone]
    assert [p.probability for p in batch] == pytest.approx([p.probability for p in alone],
                                                           rel=1e-5)
    normalised = (images / 255.0 - 0.1307) / 0.3081  # mnist5k's statistics, as training
    probs = np.asarray(jax.nn.softmax(lenet.module.apply({"params": lenet.params},
                                                         normalised.astype(np.float32))))
    np.testing.assert_allclose([p.probability for p in batch], probs.max(1), rtol=1e-5)
    assert [p.answer for p in batch] == [str(i) for i in probs.argmax(1)]
    with pytest.raises(ValueError, match="give uint8"):
        lenet.classify_images(images.astype(np.float32))

    symbols = st.char_symbols(["abcdef ghij"])
    lm = in_memory_run(rnn_modes.RNNLanguageModel(vocab_size=symbols.size, hidden_size=16),
                       (np.ones((1, 4), np.int32), np.ones(1, np.int32)), symbols,
                       {"input_shape": (30,)})
    five = lm.sample(5, seed=3)
    assert five[2] == lm.sample(1, seed=5)[0] and five[0] == lm.sample(2, seed=3)[0]
    assert len(set(five)) > 1


def test_sequence_probability_counts_the_tokens_up_to_the_first_eos():
    logits = np.log(np.array([[[.1, .2, .3, .4], [.5, .1, .2, .2], [.1, .1, .4, .4]]]))
    ids = np.array([[3, 2, 2]])  # 3, EOS, (after EOS: not counted)
    assert float(programs.sequence_probability(logits, ids)[0]) == pytest.approx(.4 * .2)
    no_eos = np.array([[3, 0, 3]])
    assert float(programs.sequence_probability(logits, no_eos)[0]) == pytest.approx(.4 * .5 * .4)


def test_lines_are_read_as_documented(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffgood film\r\n\n   \nbad plot\nlast".encode() + b"\n")
    lines = inputs.read_lines(str(path))
    assert (lines.texts, lines.numbers, lines.skipped) == (
        ["good film", "bad plot", "last"], [1, 4, 5], [2, 3])
    assert "skipped 2 empty lines (lines 2, 3)" in inputs.note(lines, "in.txt")[0]
    path.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(ValueError, match=r"line 2 is not UTF-8 \(byte 0xff at column 5\)"):
        inputs.read_lines(str(path))
    path.write_bytes(b"\n \n")
    with pytest.raises(ValueError, match="has no text"):
        inputs.read_lines(str(path))
    assert inputs.check_numbers(["007", " 12 ", "0"], ["a", "b", "c"]) == ["7", "12", "0"]
    with pytest.raises(ValueError, match=r"f line 9: '１２' is not a whole number"):
        inputs.check_numbers(["１２"], ["f line 9"])  # full-width digits are not ASCII


def test_fit_image_follows_trainings_rule_within_one_grey_level():
    from PIL import Image
    from jaxnets.data import images as tf_images
    from jaxnets.data.tf_setup import import_tf
    tf = import_tf()
    rng = np.random.default_rng(0)
    for shape, target in (((28, 28, 1), (32, 32, 1)), ((28, 28, 1), (227, 227, 3)),
                          ((100, 80, 3), (32, 32, 1)), ((60, 90, 3), (227, 227, 3))):
        image = rng.integers(0, 256, shape).astype(np.uint8)
        ours = inputs.fit_image(Image.fromarray(image.squeeze(-1) if shape[2] == 1 else image),
                                target).astype(int)
        theirs = np.asarray(tf_images.fit_image(tf.constant(image), target)).astype(int)
        assert ours.shape == theirs.shape == target
        assert np.abs(ours - theirs).max() <= 1, (shape, target)


# -- a trained run, through the command line ----------------------------------------------

def predict(workdir, *args):
    return subprocess.run([sys.executable, "-m", "jaxnets.experiments.predict",
                           f"--workdir={workdir}", *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    import data_fixtures
    from jaxnets import configs
    from jaxnets.train import train_and_evaluate
    data_dir = data_fixtures.prepared_data_dir()
    workdir = str(tmp_path_factory.mktemp("sentiment"))
    config = configs.get("rnn_sentiment", {"smoke": True, "progress": False,
                                           "data_dir": data_dir, "eval_batch_size": 16})
    state = train_and_evaluate(config, workdir).state
    return workdir, data_dir, config, state


@pytest.mark.slow
def test_predict_a_file_reproduces_evaluation(sentiment_run, tmp_path):
    from jaxnets import data
    from jaxnets.inference import load_run
    workdir, data_dir, config, state = sentiment_run
    run = load_run(workdir)
    dataset = data.get_dataset("rt_sentences", batch_size=8, eval_batch_size=16,
                               data_dir=data_dir, vocab=run.vocab, max_length=config.max_length)
    batch = next(dataset.eval_batches())  # evaluation's own padded batch
    expected = np.asarray(jax.nn.softmax(state.model.module.apply(
        {"params": state.params}, batch["tokens"], batch["lengths"])))
    given = dataset.eval_texts()[:16]
    long_text = " ".join(["good"] * (run.max_length + 5))
    (tmp_path / "in.txt").write_text("\n".join(given[:3] + [""] + given[3:] + [long_text])
                                     + "\n", encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    done = predict(workdir, f"--input_file={tmp_path / 'in.txt'}", f"--output={out}",
                   "--top_k=2")
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3] + list(range(5, 19))
    for record, text, probs in zip(records, given, expected):
        assert record["input"] == text
        assert record["answer"] == ("negative", "positive")[probs.argmax()]
        np.testing.assert_allclose(record["probability"], probs.max(), rtol=1e-5)
        assert [name for name, _ in record["top"]][0] == record["answer"]
    assert records[-1]["truncated"] is True and "truncated" not in records[0]
    assert "skipped 1 empty line (line 4)" in done.stderr
    assert f"1 text longer than the {run.max_length} tokens" in done.stderr
    assert "wrote 17 answers" in done.stderr

    table = predict(workdir, f"--input_file={tmp_path / 'in.txt'}")  # stdout: a TSV row each
    rows = [line.split("\t") for line in table.stdout.splitlines()]
    assert [r[:2] for r in rows] == [[r["input"], r["answer"]] for r in records]
    assert float(rows[0][2]) == pytest.approx(records[0]["probability"], abs=1e-4)

    (tmp_path / "bad.txt").write_bytes(b"fine film\nbad \xfe\n")
    for args, message in (
            ([f"--input_file={tmp_path / 'bad.txt'}", f"--output={out}"],
             "bad.txt line 2 is not UTF-8 (byte 0xfe at column 5): save the file as UTF-8"),
            ([f"--input_file={out}", f"--output={out}"], "is the input file"),
            (["--image=a.png"], "ask it with --text, not --image (or --input_file, a file of them)"),
            ([f"--input_file={tmp_path / 'missing.txt'}"], "cannot read")):
        bad = predict(workdir, *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
        assert message in bad.stderr.strip().splitlines()[-1]
    assert out.read_text(encoding="utf-8").count("\n") == 17  # the refused runs left it


@pytest.mark.slow
def test_a_lenet_run_classifies_image_files_as_it_evaluated(tmp_path):
    import data_fixtures
    from PIL import Image
    from jaxnets import configs, data
    from jaxnets.data import split_cache
    from jaxnets.train import train_and_evaluate
    data_dir = data_fixtures.prepared_data_dir()
    workdir = str(tmp_path / "lenet")
    config = configs.get("lenet_mnist", {"smoke": True, "progress": False,
                                         "data_dir": data_dir, "eval_batch_size": 10})
    state = train_and_evaluate(config, workdir).state
    dataset = data.get_dataset("mnist5k", batch_size=8, eval_batch_size=10, data_dir=data_dir,
                               image_shape=(32, 32, 1))
    batch = next(dataset.eval_batches())
    expected = np.asarray(jax.nn.softmax(state.model.module.apply(
        {"params": state.params}, batch["image"])))
    digits = split_cache.whole_split("mnist5k", "test", data_dir)["image"][:10]
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, digit in enumerate(digits):
        Image.fromarray(digit[..., 0]).save(folder / f"{i:02d}.png")
    (folder / "notes.txt").write_text("not an image")  # left out: not an image suffix
    out = tmp_path / "digits.jsonl"
    done = predict(workdir, "--image", str(folder), "--top_k=3", f"--output={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input"] for r in records] == [str(folder / f"{i:02d}.png") for i in range(10)]
    for record, probs in zip(records, expected):
        assert [name for name, _ in record["top"]] == [str(c) for c in np.argsort(-probs)[:3]]
        np.testing.assert_allclose([p for _, p in record["top"]], np.sort(probs)[::-1][:3],
                                   rtol=1e-4, atol=1e-6)
    one = predict(workdir, f"--image={folder / '00.png'}", "--top_k=2")
    assert one.returncode == 0 and one.stdout.count("%") == 2, one.stderr[-1000:]
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    bad = predict(workdir, "--image", str(folder))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "cannot read" in bad.stderr and "broken.png as an image" in bad.stderr


# -- frame classification (rnn_video) -------------------------------------------------------


def frame_run(max_batch=4):
    from jaxnets.models import MODELS
    module = MODELS["rnn_frame_classifier"](num_classes=11, input_shape=(6, 28, 28, 1),
                                            embed_dim=8, hidden_size=8, conv_channels=(4, 4))
    return in_memory_run(module, (np.zeros((1, 6, 28, 28, 1), np.float32), np.ones(1, np.int32)),
                         None, {"input_shape": (6, 28, 28, 1), "num_classes": 11},
                         max_batch=max_batch)


def test_clips_batched_equal_one_at_a_time_and_the_plain_model():
    run = frame_run(max_batch=4)
    rng = np.random.default_rng(0)
    clips = [rng.random((length, 28, 28, 1), np.float32) for length in (3, 9, 5)]
    batched = run.classify_clips(clips)
    frames, lengths = programs.pad_clips([clip[:6] for clip in clips], (6,))
    plain = np.asarray(jax.nn.softmax(run.module.apply({"params": run.params}, frames,
                                                       lengths)))
    for clip, prediction, probs, length in zip(clips, batched, plain, lengths):
        (alone,) = run.classify_clips([clip])
        assert alone.answer == prediction.answer and alone.truncated == (len(clip) > 6)
        np.testing.assert_allclose(alone.probability, prediction.probability, rtol=1e-5)
        probs = probs[:length]
        assert prediction.answer == " ".join(dv_name(c) for c in probs.argmax(-1))
        np.testing.assert_allclose([p for _, p in prediction.frames], probs.max(-1), rtol=1e-5)
        np.testing.assert_allclose(prediction.probability, np.prod(probs.max(-1)), rtol=1e-4)
    with pytest.raises(ValueError, match=r"clip 2 has shape \(4, 28, 28\): give frames"):
        run.classify_clips([clips[0], np.zeros((4, 28, 28))])
    narrow = frame_run(max_batch=1)  # each clip its own chunk, of its own width (4, then 6)
    done = []
    in_chunks = narrow.classify_clips(clips, progress=done.append)
    assert [p.answer for p in in_chunks] == [p.answer for p in batched] and done == [1, 1, 1]


def dv_name(class_id):
    from jaxnets.data.digit_video import CLASS_NAMES
    return CLASS_NAMES[class_id]


def test_a_clip_is_read_from_npy_or_a_directory_of_frames_and_checked(tmp_path):
    from PIL import Image
    frames = (np.arange(3 * 28 * 28) % 256).astype(np.uint8).reshape(3, 28, 28)
    np.save(tmp_path / "a.npy", frames)
    (tmp_path / "dir").mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "dir" / f"{t:02d}.png")
    expected = frames[..., None] / np.float32(255)
    for path in (tmp_path / "a.npy", tmp_path / "dir"):
        np.testing.assert_array_equal(inputs.read_clip(str(path), (28, 28, 1)), expected)
    np.save(tmp_path / "i.npy", frames.astype(np.int64))  # integers 0..255: pixel values
    np.testing.assert_array_equal(inputs.read_clip(str(tmp_path / "i.npy"), (28, 28, 1)),
                                  expected)
    np.save(tmp_path / "f.npy", expected)  # floats in [0, 1] as they are
    np.testing.assert_array_equal(inputs.read_clip(str(tmp_path / "f.npy"), (28, 28, 1)),
                                  expected)
    for name, array, message in [("big.npy", expected * 2, "values outside"),
                                 ("shape.npy", frames[:, :20], "shape (3, 20, 28): give"),
                                 ("empty.npy", frames[:0], "shape (0, 28, 28): give")]:
        np.save(tmp_path / name, array)
        with pytest.raises(ValueError, match=re.escape(message)):
            inputs.read_clip(str(tmp_path / name), (28, 28, 1))
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(ValueError, match="cannot read .*text.npy as a .npy array"):
        inputs.read_clip(str(tmp_path / "text.npy"), (28, 28, 1))
    with pytest.raises(ValueError, match="neither a .npy file nor a directory"):
        inputs.clip_paths([str(tmp_path / "missing.npy")], (28, 28, 1))
    with pytest.raises(ValueError, match="shape.npy holds an array"):  # all read first
        inputs.clip_paths([str(tmp_path / "a.npy"), str(tmp_path / "shape.npy")], (28, 28, 1))


def test_a_frame_run_is_not_exported_but_named_to_predict(tmp_path):
    from jaxnets.inference import export
    run = frame_run()
    run.config.update(preset="rnn_video", model="rnn_frame_classifier")
    with pytest.raises(ValueError, match="export serves .*predict --clip"):
        export.write(run, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_predict_classifies_the_frames_of_clips_as_the_run_evaluates(tmp_path):
    import data_fixtures
    from jaxnets import configs, data
    from jaxnets.train import train_and_evaluate
    data_dir = data_fixtures.prepared_data_dir()
    workdir = str(tmp_path / "video")
    config = configs.get("rnn_video", {"smoke": True, "progress": False, "data_dir": data_dir})
    state = train_and_evaluate(config, workdir).state
    test = data.get_dataset("digit_video", batch_size=8, eval_batch_size=8,
                            data_dir=data_dir).eval
    paths = []
    for i in range(3):
        frames = test["image"][i, :test["lengths"][i]]
        paths.append(str(tmp_path / f"clip{i}.npy"))
        np.save(paths[-1], frames)
    logits = state.model.module.apply({"params": state.params}, test["image"][:3],
                                      test["lengths"][:3])
    out = tmp_path / "frames.jsonl"
    done = predict(workdir, "--clip", *paths, f"--output={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for i, record in enumerate(records):
        length = int(test["lengths"][i])
        expected = [dv_name(c) for c in np.asarray(logits[i, :length]).argmax(-1)]
        assert record["input"] == paths[i] and record["answer"].split() == expected
        assert [name for name, _ in record["frames"]] == expected
    bad = predict(workdir, "--clip", paths[0], str(tmp_path / "frames.jsonl"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "frames.jsonl is neither a .npy file nor a directory" in bad.stderr
