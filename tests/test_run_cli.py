"""`python -m jaxnets.experiments.run`: flags, presets, custom models, end-to-end runs."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxnets.experiments import presets
from jaxnets.train.config import ConfigError


def run_cli(*args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "jaxnets.experiments.run", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


# -- bad flags: one line, exit status 2, no traceback ---------------------------------

BAD_FLAGS = [
    (["--model=resnet"], "unknown model 'resnet'; choose a preset: lenet_mnist, alexnet, "
                         "rnn_sentiment"),
    (["--optimizer=adagrad"], "--optimizer=adagrad: value should be one of "
                              "<sgd|momentum|adam|adamw>"),
    (["--dataset=imagenet21k"], "unknown dataset 'imagenet21k': jaxnets knows rt_sentences, "
                                "mnist5k"),
    (["--config.schedule=linear"], "unknown schedule 'linear'; choose one of: constant, "
                                   "cosine, warmup_cosine, step"),
    (["--config.learnin_rate=0.1"], "unknown config field 'learnin_rate'"),
    (["--config.learning_rate=fast"], "--config.learning_rate=fast"),
    (["--epochs=many"], "--epochs=many"),
    (["--model=no_such_pkg.models:make", "--steps=1"], "cannot import module 'no_such_pkg"),
    (["lenet_mnist"], "unexpected arguments lenet_mnist"),
    (["--compilation_cache=/proc/jaxnets_cache", "--config.smoke=True"],
     "--compilation_cache=/proc/jaxnets_cache: cannot create or write in the directory"),
    (["--compilation_cache=/proc/self", "--config.smoke=True"],  # exists, not writable
     "--compilation_cache=/proc/self: cannot create or write in the directory"),
    (["--model=lenet_mnist", "--parallel=pmap"],  # its 25 steps per call
     "steps_per_call=25 needs parallel=sharding or auto: pmap takes one step per call"),
    (["--config.steps_per_call=0"], "steps_per_call must be >= 1, got 0"),
    (["--steps=0"], "flag --steps=0: 0 is not a positive integer"),  # not "the whole preset"
    (["--learning_rate=nan"], "learning_rate must be a finite number > 0, got nan"),
    (["--config.eval_batch_size=-2"], "eval_batch_size must be >= 0"),
    (["--model=:make"], "custom model ':make': give it as package.module:factory"),
    (["--config.schedule=step", "--config.step_boundaries=abc"],
     "step_boundaries must be strictly increasing fractions of the run in (0, 1)"),
    (["--config.step_boundaries=(2.0,)"], "step_boundaries must be strictly increasing fractions"),
]


@pytest.mark.parametrize("args, message", BAD_FLAGS, ids=[a[0] for a, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_naming_it_with_exit_status_2(args, message, tmp_path):
    result = run_cli(*args, f"--workdir={tmp_path}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("error: ") and message in lines[-1], lines[-1]
    if not args[0].startswith(("--model=no_such", "--model=:")):  # before JAX is needed
        assert len(lines) == 1, lines


LATE_ERRORS = [  # found once JAX runs or the model is built: still one line, exit 2
    (["--model=rnn_translate", "--steps=2", "--workdir=FILE"],
     "cannot write in it (a file is in the way): give a writable directory"),
    (["--model=rnn_translate", "--steps=2", "--workdir=/proc/self"],  # exists, not writable
     "workdir /proc/self: cannot write in it"),
    (["--model=rnn_translate", "--steps=2", "--config.model_kwargs.cell=foo"],
     "unknown cell 'foo'; choose one of: vanilla, lstm, gru"),
    (["--model=lenet_mnist", "--config.smoke=True", "--config.image_shape=(8,8,1)"],
     "CONV2: window 5 is larger than the padded input 2"),
    (["--model=lenet_mnist", "--steps=5"],
     "warmup_steps=100 must be in [0, 5) for a run of 5 steps: lower it "
     "(--config.warmup_steps=0)"),
]


@pytest.mark.parametrize("args, message", LATE_ERRORS, ids=[a[1] for a, _ in LATE_ERRORS])
def test_bad_input_found_later_is_still_one_line_with_exit_status_2(args, message, tmp_path):
    (tmp_path / "afile").write_text("")
    args = [a.replace("FILE", str(tmp_path / "afile")) for a in args]
    if not any(a.startswith("--workdir") for a in args):
        args.append(f"--workdir={tmp_path / 'run'}")
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1], result.stderr[-500:]


def test_ctrl_c_ends_with_status_130_and_no_traceback():
    code = ("from jaxnets import cli\n"
            "def main(argv):\n    raise KeyboardInterrupt\n"
            "cli.run(main)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr


def test_the_default_compilation_cache_in_a_home_that_cannot_be_written_is_a_note(tmp_path):
    result = run_cli("--model=rnn_translate", "--steps=2", f"--workdir={tmp_path / 'run'}",
                     env_extra={"HOME": "/proc/self"})  # ~/.cache cannot be made there
    assert result.returncode == 0, result.stderr[-2000:]
    assert "note: no compilation cache (cannot write in it" in result.stderr


def test_a_smoke_run_has_its_own_default_workdir():
    assert presets.default_workdir(presets.build_config("lenet_mnist")) == "runs/lenet_mnist"
    smoke = presets.build_config("lenet_mnist", overrides={"smoke": True})
    assert presets.default_workdir(smoke) == "runs/lenet_mnist_smoke"


def test_model_list_prints_one_line_per_preset():
    result = run_cli("--model=list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(presets.PRESETS)
    assert all(len(line.split()) > 3 for line in lines)  # a description, not just a name


# -- config building -------------------------------------------------------------------


def test_precedence_preset_then_smoke_then_flags_then_overrides():
    config = presets.build_config(
        "lenet_mnist", {"batch_size": 4, "learning_rate": None},
        {"smoke": True, "log_every_steps": 3, "model_kwargs.extra": 1})
    assert config.batch_size == 4            # flag beats smoke_overrides
    assert config.log_every_steps == 3       # --config beats smoke_overrides
    assert config.num_steps == 8             # smoke applied where nobody said otherwise
    assert config.learning_rate == presets.lenet_mnist.get_config().learning_rate
    assert config.model_kwargs.extra == 1    # model_kwargs accepts a factory's own arguments


def test_epochs_flag_wins_over_a_preset_counted_in_steps():
    config = presets.build_config("alexnet", {"epochs": 2})
    assert config.num_epochs == 2 and config.num_steps == 0


def test_custom_factory_starts_from_the_defaults():
    config = presets.build_config("my_pkg.nets:make_net", {"dataset": "mnist5k"})
    assert config.model == "my_pkg.nets:make_net" and config.preset == "make_net"


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_documents_its_command(name):
    doc = presets.PRESETS[name].__doc__
    assert f"python -m jaxnets.experiments.run --model={name}" in doc
    assert "Measured" in doc or "measured" in doc


def test_nested_override_of_a_plain_value_is_named():
    with pytest.raises(ConfigError, match=r"--config.image_shape.x: image_shape is a single"):
        presets.build_config("lenet_mnist", {}, {"image_shape.x": 1})
    with pytest.raises(ConfigError,
                       match=r"unknown config field 'smoke_overrides.nope' .*batch_size"):
        presets.build_config("lenet_mnist", {}, {"smoke_overrides.nope.deeper": 1})


# -- presets on in-memory data (no TensorFlow): config -> model -> loop -----------------


class FakeDataset:
    """numpy batches with the attributes of a jaxnets.data Dataset."""

    def __init__(self, kind, num_classes=3, input_shape=(32, 32, 1), vocab_size=50):
        from jaxnets.train import ArrayData
        rng = np.random.default_rng(0)

        def arrays(n):
            label = rng.integers(0, num_classes, n).astype(np.int32)
            if kind == "image":
                return {"image": rng.normal(size=(n, *input_shape)).astype(np.float32),
                        "label": label}
            return {"tokens": rng.integers(1, vocab_size, (n, 12)).astype(np.int32),
                    "lengths": rng.integers(1, 13, n).astype(np.int32), "label": label}
        self._data = ArrayData(arrays(64), arrays(21), batch_size=8)
        self.num_classes, self.input_shape = num_classes, input_shape
        self.vocab = list(range(vocab_size)) if kind == "text" else None
        self.steps_per_epoch = self._data.steps_per_epoch
        self.train_epoch, self.eval_batches = self._data.train_epoch, self._data.eval_batches


@pytest.mark.parametrize("name, kind", [("lenet_mnist", "image"), ("rnn_sentiment", "text")])
def test_preset_smoke_config_trains_on_numpy_data(name, kind, tmp_path):
    from jaxnets.train import fit
    from jaxnets.train.experiment import model_from_config
    config = presets.build_config(name, {}, {"smoke": True, "progress": False})
    data = FakeDataset(kind)
    result = fit(model_from_config(config, data), data, config, str(tmp_path))
    assert result.summary["step"] == config.num_steps
    assert result.eval["examples"] == 16  # smoke: eval_max_batches=2 batches of 8
    assert "SMOKE" in result.summary_line


# -- end to end through the CLI, on the embedded datasets built from fixtures ----------


@pytest.fixture(scope="module")
def data_dir():
    import data_fixtures  # the data tests' offline fixtures (no network)
    return data_fixtures.prepared_data_dir()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet_mnist", "rnn_sentiment", "alexnet"])
def test_preset_runs_end_to_end(name, data_dir, tmp_path):
    args = [f"--model={name}", f"--workdir={tmp_path}", "--config.smoke=True",
            f"--config.data_dir={data_dir}"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "test accuracy" in summary and "steps" in summary, result.stdout
    for name_ in ("learning_curve.png", "metrics.jsonl", "summary.json"):
        assert (tmp_path / name_).exists()
    if name == "lenet_mnist":  # the same command again resumes the finished run
        again = run_cli(*args)
        assert again.returncode == 0 and "resuming at step 8" in again.stdout


@pytest.mark.slow
def test_custom_model_factory_from_the_command_line(data_dir, tmp_path):
    (tmp_path / "my_nets.py").write_text(textwrap.dedent('''
        import jax, jax.numpy as jnp

        def linear(num_classes, input_shape):
            """A pure (init, apply) pair, sized from the dataset."""
            size = input_shape[0] * input_shape[1] * input_shape[2]
            def init(rng, batch):
                return {"w": jnp.zeros((size, num_classes)), "b": jnp.zeros(num_classes)}
            def apply(params, batch, *, train, rng):
                return batch["image"].reshape(-1, size) @ params["w"] + params["b"]
            return init, apply
    '''))
    result = run_cli("--model=my_nets:linear", "--dataset=mnist5k", "--steps=6",
                     "--batch_size=8", f"--workdir={tmp_path / 'run'}",
                     f"--config.data_dir={data_dir}", env_extra={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FunctionalModel(apply), 7,850 params" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("linear: test accuracy")
