"""Export (jaxnets/inference/export.py): the loader it writes runs the program with jax and numpy
alone, in a process where flax, tensorflow and jaxnets cannot be imported, and answers as
the run does."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxnets.data import sequence_tasks as st
from jaxnets.data.tokenizer import build_vocabulary
from jaxnets.inference import export
from jaxnets.models import LeNet, rnn_modes
from test_inference import WORDS, in_memory_run, texts

BLOCKED = ("flax", "tensorflow", "jaxnets", "optax", "orbax", "ml_collections", "PIL")
DRIVER = f"""
import contextlib, io, json, runpy, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # `import name` raises ImportError
for case in json.loads(sys.argv[1]):
    serve = runpy.run_path(case["folder"] + "/serve.py")
    sys.stdin, out = io.StringIO(case["stdin"]), io.StringIO()
    with contextlib.redirect_stdout(out):
        serve["main"](case["folder"], *case["args"])
    print(json.dumps([json.loads(line) for line in out.getvalue().splitlines()]))
loaded = [n for n in {BLOCKED!r} if sys.modules.get(n) is not None]
assert not loaded, loaded
"""


def run_loader(cases, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], cwd=cwd,
                          capture_output=True, text=True, env={**env, "JAX_PLATFORMS": "cpu"},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_loader_answers_as_the_run_without_flax_tensorflow_or_jaxnets(tmp_path):
    vocab = build_vocabulary(WORDS, 20)
    classifier = in_memory_run(rnn_modes.RNNClassifier(vocab_size=len(vocab), hidden_size=16),
                               (np.ones((1, 4), np.int32), np.ones(1, np.int32)), vocab,
                               {"input_shape": (20,), "num_classes": 2})
    seq2seq = in_memory_run(
        rnn_modes.Seq2Seq(st.NUMBER_SOURCE.size, st.NUMBER_TARGET.size, hidden_size=16),
        (np.ones((1, 4), np.int32), np.ones(1, np.int32), np.ones((1, 3), np.int32),
         np.ones(1, np.int32)), st.NUMBER_TARGET, {"input_shape": (4,)}, st.NUMBER_SOURCE)
    lenet = in_memory_run(LeNet(num_classes=10), (np.zeros((1, 32, 32, 1), np.float32),),
                          None, {"input_shape": (32, 32, 1), "num_classes": 10})
    captioner = in_memory_run(
        rnn_modes.RNNCaptioner(vocab_size=st.CAPTION_WORDS.size, input_shape=(28, 56, 1),
                               hidden_size=16),
        (np.zeros((1, 28, 56, 1), np.float32), np.ones((1, 3), np.int32), np.ones(1, np.int32)),
        st.CAPTION_WORDS, {"input_shape": (28, 56, 1)})
    symbols = st.char_symbols(["abcdef ghij"])
    lm = in_memory_run(rnn_modes.RNNLanguageModel(vocab_size=symbols.size, hidden_size=16),
                       (np.ones((1, 4), np.int32), np.ones(1, np.int32)), symbols,
                       {"input_shape": (30,)})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 32, 32, 1)).astype(np.uint8)
    strips = rng.uniform(size=(6, 28, 56, 1)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "strips.npy", strips)
    given, numbers = texts(7) + [" ".join(["good"] * 25)], ["0", "007", "12", "9999", "305"]

    folders = {name: str(tmp_path / name) for name in ("text", "numbers", "lenet", "caption",
                                                       "lm")}
    described = {name: export.write(run, folders[name]) for name, run in (
        ("text", classifier), ("numbers", seq2seq), ("lenet", lenet), ("caption", captioner),
        ("lm", lm))}
    assert {k: d["batch_size"] for k, d in described.items()} == {
        "text": 0, "numbers": 0, "lenet": 0, "caption": 4, "lm": 0}  # the CNN branches on b
    assert described["text"]["inputs"][0]["shape"] == ["b", "t"]
    assert sorted(os.listdir(folders["text"])) == sorted(export.FILES)

    answers = run_loader([
        {"folder": folders["text"], "stdin": "\n".join(given) + "\n", "args": []},
        {"folder": folders["text"], "stdin": given[0] + "\n", "args": []},  # another batch
        {"folder": folders["numbers"], "stdin": "\n".join(numbers), "args": []},
        {"folder": folders["lenet"], "stdin": "", "args": [str(tmp_path / "images.npy")]},
        {"folder": folders["caption"], "stdin": "", "args": [str(tmp_path / "strips.npy")]},
        {"folder": folders["lm"], "stdin": "", "args": ["3"]}], cwd=tmp_path)

    def same(loaded, predictions):
        assert [a["answer"] for a in loaded] == [p.answer for p in predictions]
        assert [a["probability"] for a in loaded] == pytest.approx(
            [p.probability for p in predictions], rel=1e-5)

    same(answers[0], classifier.classify_batch(given))
    same(answers[1], classifier.classify_batch(given[:1]))
    same(answers[2], seq2seq.translate_batch(numbers))
    same(answers[3], lenet.classify_images(images))
    same(answers[4], captioner.caption_batch(strips))
    assert [a["answer"] for a in answers[5]] == lm.sample(3, seed=0, temperature=0.8)


def test_export_replaces_an_earlier_export_and_refuses_other_folders(tmp_path):
    symbols = st.char_symbols(["ab"])
    lm = in_memory_run(rnn_modes.RNNLanguageModel(vocab_size=symbols.size, hidden_size=8),
                       (np.ones((1, 4), np.int32), np.ones(1, np.int32)), symbols,
                       {"input_shape": (10,)})
    out = tmp_path / "export"
    export.write(lm, str(out), temperature=0.5)
    export.write(lm, str(out), temperature=1.5)  # an earlier export: replaced whole
    assert json.loads((out / "manifest.json").read_text())["sample"]["temperature"] == 1.5
    assert sorted(os.listdir(out)) == sorted(export.FILES)
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no staging folder left behind
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files: give a new or empty directory"):
        export.write(lm, str(tmp_path / "mine"))
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
    with pytest.raises(ValueError, match="is a file"):
        export.write(lm, str(tmp_path / "mine" / "notes.txt"))


@pytest.mark.slow
def test_export_command_on_a_finished_run(tmp_path):
    from jaxnets import configs
    from jaxnets.inference import load_run
    from jaxnets.train import train_and_evaluate
    workdir = str(tmp_path / "translate")
    train_and_evaluate(configs.get("rnn_translate", {
        "num_steps": 40, "progress": False, "model_kwargs.hidden_size": 16}), workdir)
    command = [sys.executable, "-m", "jaxnets.experiments.export", f"--workdir={workdir}"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(command + [f"--out={tmp_path / 'out'}"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "batch size any (symbolic)" in done.stdout
    answers = run_loader([{"folder": str(tmp_path / "out"), "stdin": "42\n0042\n7\n",
                           "args": []}], cwd=tmp_path)[0]
    assert [a["answer"] for a in answers] == [p.answer for p in load_run(workdir).translate_batch(
        ["42", "42", "7"])]
    for args, message in ((["--out=" + str(tmp_path / "out"), "--platforms=gpu"],
                           "--platforms=gpu: give some of cpu, cuda, rocm, tpu"),
                          (["--out=" + workdir], "holds other files")):
        bad = subprocess.run(command + args, capture_output=True, text=True, env=env,
                             timeout=300)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
        assert message in bad.stderr.strip().splitlines()[-1]
