"""Bad input to every command line: one line naming the problem and the fix, exit status 2,
no traceback, and the workdir as it was (the table the README's promise is tested by)."""

import hashlib
import os
import subprocess
import sys

import data_fixtures
import pytest
from test_data_public import offline_env  # every HTTP(S) request refused, as offline

RUN = "jaxnets.experiments.run"

# (module, arguments, words of the one line); WORKDIR is a workdir holding a user's file,
# FILE a file, DATA an empty data directory; every command runs offline, its default data
# dir ($TFDS_DATA_DIR) holding the embedded datasets built from the test fixtures (not
# ~/tensorflow_datasets, which a new machine has not filled).
CASES = [
    # run: presets, flags and config fields
    (RUN, ["--model=resnet"], "unknown model 'resnet'; choose a preset: lenet_mnist, alexnet"),
    (RUN, ["--optimizer=adagrad"], "--optimizer=adagrad: value should be one of "
                                   "<sgd|momentum|adam|adamw>"),
    (RUN, ["--dataset=imagenet21k"], "unknown dataset 'imagenet21k': jaxnets knows "
                                     "rt_sentences, mnist5k"),
    (RUN, ["--config.schedule=linear"], "unknown schedule 'linear'; choose one of: constant, "
                                        "cosine, warmup_cosine, step"),
    (RUN, ["--config.learnin_rate=0.1"], "unknown config field(s) learnin_rate; valid fields: "
                                         "augment, b2, batch_size,"),
    (RUN, ["--config.nonexistent=1"], "unknown config field(s) nonexistent"),
    (RUN, ["--model=lenet_mnist", "--config.model_kwargs.foo.bar=3", "--config.smoke=True"],
     "unknown config field 'model_kwargs.foo' in --config.model_kwargs.foo.bar"),
    (RUN, ["--model=lenet_mnist", "--config.foo.bar=1"],
     "unknown config field 'foo' in --config.foo.bar; valid fields there: augment,"),
    (RUN, ["--model=lenet_mnist", "--config.smoke_overrides.x.y=1"],
     "unknown config field 'smoke_overrides.x' in --config.smoke_overrides.x.y"),
    (RUN, ["--config.model_kwarg.cell=lstm"], "unknown config field 'model_kwarg' in "
                                              "--config.model_kwarg.cell; valid fields there: "),
    (RUN, ["--config.learning_rate=fast"], "--config.learning_rate=fast"),
    (RUN, ["--config.batch_size=-1"], "batch_size must be >= 1, got -1"),
    (RUN, ["--epochs=many"], "--epochs=many"),
    (RUN, ["--steps=0"], "flag --steps=0: 0 is not a positive integer"),
    (RUN, ["--config.num_epochs=-2"], "set num_epochs (-2) or num_steps (0) to a positive"),
    (RUN, ["--learning_rate=nan"], "learning_rate must be a finite number > 0, got nan"),
    (RUN, ["--config.eval_batch_size=-2"], "eval_batch_size must be >= 0"),
    (RUN, ["--config.steps_per_call=0"], "steps_per_call must be >= 1, got 0"),
    (RUN, ["--config.schedule=step", "--config.step_boundaries=abc"],
     "step_boundaries must be strictly increasing fractions of the run in (0, 1)"),
    (RUN, ["--config.step_boundaries=(2.0,)"], "step_boundaries must be strictly increasing"),
    (RUN, ["--parallel=bogus"], "flag --parallel=bogus: value should be one of"),
    (RUN, ["--num_devices=100"], "num_devices=100, but this process has"),
    (RUN, ["--host_devices=-1"], "host_devices must be >= 0 (0 = the CPU as one device)"),
    (RUN, ["--model=rnn_sentiment", "--host_devices=3"],  # split before JAX: 3 devices
     "batch size 64 does not split evenly over 3 devices"),
    (RUN, ["--num_processes=2", "--process_id=5"],
     "multi-process runs need --coordinator_address, --num_processes and --process_id"),
    (RUN, ["lenet_mnist"], "unexpected arguments lenet_mnist"),
    # run: config files and custom models
    (RUN, ["--config=nope.py"], "--config=nope.py: no such file; give a config file such as "
                                "jaxnets/configs/rnn_sentiment.py, or --model=NAME"),
    (RUN, ["--config=CONFIG:def get_config(:"], "SyntaxError at line 1: invalid syntax; fix "
                                                "the config file"),
    (RUN, ["--config=CONFIG:def get_config():\n    return undefined"],
     "NameError at line 2: name 'undefined' is not defined; fix the config file"),
    (RUN, ["--config=CONFIG:import no_such_module"],
     "ModuleNotFoundError at line 1: No module named 'no_such_module'"),
    (RUN, ["--config=CONFIG:def get_config():\n    return [1]"],
     "a config must be a dict or an ml_collections.ConfigDict, got list [1]"),
    (RUN, ["--model=no_such_pkg.models:make", "--steps=1"], "cannot import module 'no_such_pkg"),
    (RUN, ["--model=:make"], "custom model ':make': give it as package.module:factory"),
    (RUN, ["--model=no_such_pkg.models:make", "--config.data_dir=DATA"],  # before any data
     "cannot import module 'no_such_pkg"),
    # run: the data
    (RUN, ["--model=lenet_mnist", "--dataset=mnist", "--config.data_dir=DATA"],
     "dataset 'mnist' is not prepared in DATA and cannot be downloaded from here"),
    (RUN, ["--model=rnn_sentiment", "--dataset=imdb_reviews", "--config.data_dir=DATA"],
     "use the embedded 'rt_sentences' (--dataset=rt_sentences)"),
    (RUN, ["--model=lenet_mnist", "--config.data_dir=FILE"],
     "data_dir FILE is a file: give a directory for the datasets"),
    # run: found once JAX runs or the model is built
    (RUN, ["--compilation_cache=/proc/jaxnets_cache", "--config.smoke=True"],
     "--compilation_cache=/proc/jaxnets_cache: cannot create or write in the directory"),
    (RUN, ["--compilation_cache=/proc/self", "--config.smoke=True"],  # exists, not writable
     "--compilation_cache=/proc/self: cannot create or write in the directory"),
    (RUN, ["--model=rnn_translate", "--steps=2", "--config.model_kwargs.cell=foo"],
     "unknown cell 'foo'; choose one of: vanilla, lstm, gru"),
    (RUN, ["--model=lenet_mnist", "--config.smoke=True", "--config.image_shape=(8,8,1)"],
     "CONV2: window 5 is larger than the padded input 2"),
    (RUN, ["--model=lenet_mnist", "--steps=5"],
     "warmup_steps=100 must be in [0, 5) for a run of 5 steps: lower it "
     "(--config.warmup_steps=0)"),
    # the launcher
    ("jaxnets.experiments.launch", ["--port=70000", "--", "--model=lenet_mnist"],
     "flag --port=70000: 70000 is not an integer in the range [0, 65535]"),
    ("jaxnets.experiments.launch", ["--port=-1", "--", "--model=lenet_mnist"],
     "flag --port=-1: -1 is not an integer in the range [0, 65535]"),
    ("jaxnets.experiments.launch", ["--num_processes=0", "--", "--model=lenet_mnist"],
     "flag --num_processes=0: 0 is not a positive integer"),
    ("jaxnets.experiments.launch", ["--num_processes=2"], "give the run's flags after --"),
    # the data command
    ("jaxnets.data", ["--dataset=mnist5k", "--examples=-3"],
     "flag --examples=-3: -3 is not a non-negative integer"),
    ("jaxnets.data", ["--dataset=nosuch"], "unknown dataset 'nosuch'"),
    ("jaxnets.data", ["--dataset=cifar10", "--data_dir=DATA"],
     "dataset 'cifar10' is not prepared in DATA and cannot be downloaded from here"),
    ("jaxnets.data", ["--dataset=mnist5k", "--data_dir=FILE"], "data_dir FILE is a file"),
    # predict, summary, benchmark
    ("jaxnets.experiments.predict", ["--workdir=WORKDIR", "--text=good"],
     "has no config.json: is it the --workdir of a finished"),
    ("jaxnets.experiments.summary", ["--model=resnet"], "unknown model 'resnet'"),
    ("jaxnets.experiments.summary", ["--input_shape=32x32"], "HxWxC"),
    ("jaxnets.experiments.summary", ["--model=rnn_lm"], "--model=rnn_lm is not a CNN"),
    ("jaxnets.experiments.benchmark", ["--sections=gemm,speed"], "unknown section(s) speed"),
    ("jaxnets.experiments.benchmark", ["--batch_sizes=alexnet=0"],
     "batch size of alexnet must be a positive integer"),
    ("jaxnets.experiments.benchmark", ["--reps=0"], "flag --reps=0"),
    ("jaxnets.experiments.benchmark", ["--out=FILE", "--sections=gemm", "--tiny"],
     "cannot create the directory"),
]


def _tree(path) -> dict:
    """Every file under `path` with its content's hash."""
    return {os.path.relpath(os.path.join(d, f), path):
            hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for d, _, files in os.walk(path) for f in files}


def _arguments(args, tmp_path) -> list[str]:
    """The case's arguments with WORKDIR, FILE and CONFIG:<source> made real."""
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "data").mkdir()
    out = []
    for arg in args:
        if arg.startswith("--config=CONFIG:"):
            (tmp_path / "user_config.py").write_text(arg[len("--config=CONFIG:"):] + "\n")
            arg = f"--config={tmp_path / 'user_config.py'}"
        out.append(arg.replace("WORKDIR", str(tmp_path / "workdir"))
                   .replace("FILE", str(tmp_path / "afile"))
                   .replace("DATA", str(tmp_path / "data")))
    return out


@pytest.mark.parametrize("module, args, message", CASES,
                         ids=[f"{m.split('.')[-1]} {' '.join(a)[:60]}" for m, a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_the_workdir_unchanged(module, args, message,
                                                                 tmp_path):
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("the user's own file\n")
    before = _tree(workdir)
    argv = _arguments(args, tmp_path)
    if module == RUN and "--" not in argv:
        argv.append(f"--workdir={workdir}")
    result = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True,
                            text=True, timeout=300, env={
                                **offline_env(),
                                "TFDS_DATA_DIR": data_fixtures.prepared_data_dir()})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    message = message.replace("DATA", str(tmp_path / "data")).replace(
        "FILE", str(tmp_path / "afile"))
    assert lines == [lines[-1]] and lines[-1].startswith("error: "), lines
    assert message in lines[-1], lines[-1]
    assert _tree(workdir) == before


# -- the Python API: fit() names what is wrong with its arguments -------------------------

def _net():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, image, *, train):
            return nn.Dense(3)(image.reshape((image.shape[0], -1)))
    return Net()


@pytest.mark.parametrize("key, dtype, words", [
    ("image", str, "'image' has dtype <U32 (strings)"),
    ("image", object, "'image' has dtype object (Python objects)"),
    ("label", bytes, "'label' has dtype |S11 (bytes)"),
])
def test_fit_names_an_array_that_is_not_numbers_and_its_key(key, dtype, words, tmp_path):
    import numpy as np

    from jaxnets.train import ArrayData, fit
    arrays = {"image": np.zeros((8, 4, 4, 1), np.float32), "label": np.zeros(8, np.int32)}
    arrays[key] = arrays[key].astype(dtype)
    with pytest.raises(TypeError, match=r"ArrayData's train arrays: " + words.replace(
            "(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        ArrayData(arrays, None, batch_size=4)
    with pytest.raises(TypeError, match=f"the first training batch: '{key}'"):
        fit(_net(), [arrays], {"num_epochs": 1, "progress": False}, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("config", [[1, 2], "num_epochs=2", 3])
def test_fit_names_a_config_of_the_wrong_type(config, tmp_path):
    from jaxnets.train import fit
    from jaxnets.train.config import ConfigError
    with pytest.raises(ConfigError, match="a config must be a dict or an "
                                          f"ml_collections.ConfigDict, got {type(config).__name__}"):
        fit(_net(), [], config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
