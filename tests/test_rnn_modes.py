"""The lecture's four RNN modes: each learns, and a saved run predicts what it evaluated."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from jaxnets.data import sequence_tasks as st
from jaxnets.data.arrays import ArrayData
from jaxnets.models import rnn_modes
from jaxnets.train import fit

QUICK = {"num_steps": 120, "learning_rate": 5e-3, "log_every_steps": 1000,
         "checkpoint_every_steps": 0, "progress": False, "grad_clip_norm": 1.0}


def _final_loss(model, train, test, tmp_path, batch_size=32):
    data = ArrayData(train, test, batch_size=batch_size)
    return fit(model, data, QUICK, str(tmp_path)).eval["loss"]


def test_many_to_one_learns_which_token_is_present(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 12, size=(600, 10)).astype(np.int32)
    lengths = rng.integers(3, 11, size=600).astype(np.int32)
    tokens[np.arange(10)[None, :] >= lengths[:, None]] = 0
    label = ((tokens == 5).any(1)).astype(np.int32)  # does word 5 occur?
    arrays = {"tokens": tokens, "lengths": lengths, "label": label}
    split = lambda a, s: {k: v[s] for k, v in a.items()}  # noqa: E731
    model = rnn_modes.RNNClassifier(vocab_size=12, hidden_size=32, embed_dim=16)
    loss = _final_loss(model, split(arrays, slice(500)), split(arrays, slice(500, None)),
                       tmp_path)
    assert loss < 0.35 * np.log(2)  # chance is ln 2


def test_many_to_many_learns_the_next_character(tmp_path):
    texts = ["abcabcabc", "bcabcab", "cabcabcabca"] * 40
    symbols = st.char_symbols(texts)
    arrays = st.char_lm(texts, symbols, max_length=14)
    model = rnn_modes.RNNLanguageModel(vocab_size=symbols.size, hidden_size=32, embed_dim=8)
    loss = _final_loss(model, arrays, arrays, tmp_path)
    assert loss < 0.3 * np.log(symbols.size)  # per-step loss far below a uniform guess


def test_one_to_many_captions_tiny_digit_strips(tmp_path):
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, size=(10, 28, 28, 1)).astype(np.uint8)  # one per class
    train = st.digit_captions(prototypes, np.arange(10), count=400, seed=0, max_digits=2)
    test = st.digit_captions(prototypes, np.arange(10), count=64, seed=1, max_digits=2)
    model = rnn_modes.RNNCaptioner(vocab_size=st.CAPTION_WORDS.size,
                                   input_shape=(28, 56, 1), hidden_size=32, embed_dim=8)
    loss = _final_loss(model, train, test, tmp_path)
    assert loss < 0.3 * np.log(st.CAPTION_WORDS.size)


def test_seq2seq_learns_number_words(tmp_path):
    train, test = st.number_words()
    model = rnn_modes.Seq2Seq(st.NUMBER_SOURCE.size, st.NUMBER_TARGET.size,
                              hidden_size=48, embed_dim=16)
    loss = _final_loss(model, {k: v[:3000] for k, v in train.items()},
                       {k: v[:300] for k, v in test.items()}, tmp_path, batch_size=64)
    assert loss < 0.3 * np.log(st.NUMBER_TARGET.size)


# -- a finished run, loaded back: prediction reproduces evaluation ----------------------


@pytest.fixture(scope="module")
def translate_run(tmp_path_factory):
    from jaxnets import configs
    from jaxnets.train import train_and_evaluate
    workdir = str(tmp_path_factory.mktemp("translate"))
    config = configs.get("rnn_translate", {"num_steps": 300, "progress": False,
                                           "model_kwargs.hidden_size": 48})
    result = train_and_evaluate(config, workdir)
    return workdir, result


def test_prediction_reproduces_evaluation(translate_run):
    from jaxnets import inference
    workdir, result = translate_run
    run = inference.load_run(workdir)
    _, test = st.number_words()
    batch = {k: v[:50] for k, v in test.items()}
    evaluated = inference.generate(run.module, result.state.params, batch, 8)
    for i in range(50):
        number = str(int(batch["number"][i]))
        assert run.translate(number) == run.vocab.decode(evaluated[i])
    # the loaded checkpoint scores exactly what the run reported at its end
    data = ArrayData(train_like(test), test, batch_size=64, eval_batch_size=500)
    again = inference.exact_match(run.module, run.params, data.eval_batches())
    assert again == {"exact_match": result.summary["exact_match"], "sequences": 1000}
    assert again["exact_match"] > 0.05  # 300 steps already translate some numbers exactly
    # token accuracy is scored over tokens, but the examples are the 1,000 test numbers
    assert result.eval["examples"] == 1000 and result.eval["scored"] > 1000
    assert f"1,000 examples, {result.eval['scored']:,} tokens" in result.summary_line


def test_a_refused_resume_leaves_the_finished_run_as_it_was(translate_run):
    from jaxnets import inference
    from jaxnets import configs
    from jaxnets.train import ConfigError, train_and_evaluate
    workdir, _ = translate_run
    names = [n for n in sorted(os.listdir(workdir)) if n.endswith(".json")]
    before = {n: open(os.path.join(workdir, n), encoding="utf-8").read() for n in names}
    other = configs.get("rnn_translate", {"num_steps": 300, "progress": False,
                                          "model_kwargs.hidden_size": 64})
    with pytest.raises(ConfigError, match="holds a run with another config"):
        train_and_evaluate(other, workdir)
    assert {n: open(os.path.join(workdir, n), encoding="utf-8").read() for n in names} == before
    assert "model.json" in names and inference.load_run(workdir).translate("12")


@pytest.mark.parametrize("fields, message", [
    ({"cell": "foo"}, "unknown cell 'foo'"), ({"hidden_size": 0}, "hidden_size=0"),
    ({"dropout": 1.5}, "dropout=1.5: must be a dropout rate in [0, 1)")])
def test_an_rnn_that_cannot_work_is_refused_when_built(fields, message):
    from jaxnets.train import ConfigError
    from jaxnets.train.model_api import build_model
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_model("rnn_classifier", model_kwargs=fields, vocab_size=20, num_classes=2)


def train_like(arrays):
    return {k: v[:64] for k, v in arrays.items()}


def test_predict_cli_answers_and_refuses(translate_run):
    workdir, _ = translate_run
    cmd = [sys.executable, "-m", "jaxnets.experiments.predict", f"--workdir={workdir}"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    ok = subprocess.run(cmd + ["--number=0"], capture_output=True, text=True, env=env,
                        timeout=120)
    assert ok.returncode == 0 and ok.stdout.strip().split()[0] in st.NUMBER_TARGET.symbols
    bad = subprocess.run(cmd + ["--text=a fine film"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2
    assert "ask it with --number, not --text" in bad.stderr and "Traceback" not in bad.stderr
    for args, message in ((["--number=7", "--temperature=nan"], "give a finite number > 0"),
                          (["--text=  "], "--text is empty"),
                          (["--eval_example=1", "--write_png=out.txt"], "ending in .png"),
                          (["--image=a.png", "--write_png=b.png"], "give --eval_example")):
        bad = subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=120)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-1000:]
        assert re.search(message, bad.stderr.strip().splitlines()[-1]), bad.stderr[-300:]


def test_an_unreadable_image_or_path_is_named(tmp_path):
    from jaxnets import inference
    (tmp_path / "notes.txt").write_text("not a picture")
    for path in (tmp_path / "notes.txt", tmp_path / "missing.png"):
        with pytest.raises(ValueError, match=f"cannot read {path} as an image"):
            inference.read_strip(str(path), (28, 112, 1))
    with pytest.raises(ValueError, match="cannot write .* give a writable path"):
        inference.write_strip(str(tmp_path / "notes.txt" / "x.png"), np.zeros((28, 112, 1)))


def test_classify_reproduces_evaluation(tmp_path):
    import data_fixtures
    import jax
    from jaxnets import data, inference
    from jaxnets import configs
    from jaxnets.train import train_and_evaluate
    data_dir = data_fixtures.prepared_data_dir()
    config = configs.get("rnn_sentiment", {
        "smoke": True, "progress": False, "data_dir": data_dir, "eval_batch_size": 16})
    result = train_and_evaluate(config, str(tmp_path))
    run = inference.load_run(str(tmp_path))
    dataset = data.get_dataset("rt_sentences", batch_size=8, eval_batch_size=16,
                               data_dir=data_dir, vocab=run.vocab,
                               max_length=config.max_length)
    batch = next(dataset.eval_batches())
    logits = result.state.model.module.apply({"params": result.state.params},
                                             batch["tokens"], batch["lengths"])
    probs = jax.nn.softmax(logits)
    for text, p in zip(dataset.eval_texts()[:16], np.asarray(probs)):
        label, prob = run.classify(text)
        assert label == inference.SENTIMENT_NAMES[int(p.argmax())]
        np.testing.assert_allclose(prob, p.max(), rtol=1e-5)
