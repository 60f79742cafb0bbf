"""`python -m jaxnets.experiments.run`: flags, config files and presets, custom models,
end-to-end runs."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxnets import configs
from jaxnets.configs import command_line
from jaxnets.train.config import ConfigError

REPO = os.getcwd()


def run_cli(*args, env_extra=None, timeout=300, cwd=None):
    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "jaxnets.experiments.run", *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


# -- bad flags: the table of every CLI is tests/test_bad_input.py ------------------


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


def test_a_smoke_run_has_its_own_default_workdir(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # imagenette not prepared: offline
    assert configs.default_workdir(configs.get("lenet_mnist")) == "runs/lenet_mnist"
    smoke = configs.get("lenet_mnist", {"smoke": True})
    assert configs.default_workdir(smoke) == "runs/lenet_mnist_smoke"
    assert configs.default_workdir(configs.get("alexnet")) == "runs/alexnet_mnist"
    assert configs.default_workdir(configs.get("alexnet", {"smoke": True})
                                   ) == "runs/alexnet_mnist_smoke"  # once "_smoke_smoke"


def test_model_list_names_each_preset_and_its_mode_in_the_lecture():
    result = run_cli("--model=list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[::2]] == list(configs.PRESETS)
    assert all(len(line.split()) > 3 for line in lines[::2])  # a description, not a name
    modes = [line.split("lecture: ")[1].split(";")[0] for line in lines[1::2]]
    for mode in ("one to one", "one to many", "many to one", "many to many"):
        assert any(m.startswith(mode) for m in modes), (mode, modes)  # the lecture's picture


def test_model_name_finds_its_config_file_from_any_working_directory(tmp_path):
    result = run_cli("--model=lenet_mnist", "--config.model_kwargs.bogus=1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]  # the preset's model, refused:
    assert "model 'lenet': LeNet() got an unexpected keyword argument 'bogus'" in result.stderr


# -- config building: one parse of the command line, by config_flags ---------------------


def parse(*args):
    return command_line.parse(["run", *args]).to_dict()


@pytest.mark.parametrize("name", list(configs.PRESETS))
def test_config_file_and_model_name_give_the_same_config(name):
    relative = os.path.relpath(configs.path(name), REPO)
    assert relative == f"jaxnets/configs/{name}.py"
    assert parse(f"--config={relative}") == parse(f"--model={name}") == configs.get(name).to_dict()


def test_no_model_and_no_config_is_the_default_preset():
    assert parse() == parse(f"--model={configs.DEFAULT}")


def test_the_short_forms_are_spelled_out_for_config_flags():
    file = configs.path("alexnet")
    assert command_line.expand_argv(
        ["run", "--config.seed=1", "--model=alexnet", "--epochs", "2", "--workdir=w", "x"]) == [
        "run", f"--config={file}", "--config.seed=1", "--model=alexnet", "--epochs", "2",
        "--config.num_epochs=2", "--config.num_steps=0", "--workdir=w", "x"]
    assert command_line.expand_argv(["run", "--model=list", "--epochs=2"]) == [
        "run", "--model=list", "--epochs=2"]


def test_overrides_change_their_fields_and_nothing_else():
    preset = configs.get("rnn_sentiment").to_dict()
    config = parse("--model=rnn_sentiment", "--config.model_kwargs.cell=lstm", "--seed=3",
                   "--config.schedule=constant")
    assert {k for k in preset if config[k] != preset[k]} == {"model_kwargs", "seed", "schedule"}
    assert config["model_kwargs"] == {**preset["model_kwargs"], "cell": "lstm"}
    assert (config["seed"], config["schedule"]) == (3, "constant")
    assert parse("--model=lenet_mnist", "--config.model_kwargs.extra=1")["model_kwargs"] == {
        "extra": 1}  # model_kwargs takes a factory's own arguments


PRECEDENCE = [  # (command line, field, value)
    (["--batch_size=4", "--config.batch_size=5"], "batch_size", 5),  # the later wins
    (["--config.batch_size=5", "--batch_size=4"], "batch_size", 4),
    (["--config.smoke=True"], "batch_size", 8),                      # smoke beats the preset
    (["--config.smoke=True", "--batch_size=4"], "batch_size", 4),    # flags beat smoke
    (["--batch_size=4", "--config.smoke=True"], "batch_size", 4),    # wherever they stand
    (["--config.smoke=True", "--config.log_every_steps=3"], "log_every_steps", 3),
    (["--config.smoke=True"], "num_steps", 8),
    (["--config.num_epochs=2", "--config=jaxnets/configs/alexnet.py"], "num_epochs", 2),
]


@pytest.mark.parametrize("args, field, value", PRECEDENCE,
                         ids=[" ".join(a) for a, *_ in PRECEDENCE])
def test_precedence_preset_then_smoke_then_the_command_line_in_order(args, field, value):
    if not any(a.startswith("--config=") for a in args):
        args = ["--model=lenet_mnist", *args]
    assert parse(*args)[field] == value


EPOCHS = [  # alexnet's smoke preset counts 40 steps: --epochs asks for epochs instead
    (["--epochs=2"], 2, 0),
    (["--epochs=2", "--steps=3"], 2, 3),
    (["--epochs=2", "--config.num_steps=5"], 2, 5),
    (["--config.num_steps=5", "--epochs=2"], 2, 0),  # the later wins, as everywhere
    (["--config.num_epochs=2"], 2, 40),              # only the flag means "count epochs"
]


@pytest.mark.parametrize("args, epochs, steps", EPOCHS, ids=[" ".join(a) for a, *_ in EPOCHS])
def test_epochs_flag_wins_over_a_preset_counted_in_steps(args, epochs, steps):
    config = parse("--model=alexnet", *args)
    assert (config["num_epochs"], config["num_steps"]) == (epochs, steps)


def test_custom_factory_starts_from_the_defaults():
    config = parse("--model=my_pkg.nets:make_net", "--dataset=mnist5k")
    assert config["model"] == "my_pkg.nets:make_net" and config["preset"] == "make_net"
    custom = f"--config={os.path.join(REPO, 'jaxnets/configs/custom.py')}:my_pkg.nets:make_net"
    assert parse(custom, "--dataset=mnist5k") == config
    assert configs.get("my_pkg.nets:make_net", {"dataset": "mnist5k"}).to_dict() == config


@pytest.mark.parametrize("name", list(configs.PRESETS))
def test_every_preset_documents_its_command(name):
    doc = configs.PRESETS[name].__doc__
    assert f"python -m jaxnets.experiments.run --model={name}" in doc
    assert "experiments/results.md (generated from the recorded run in experiments/" in doc


def test_the_configs_directory_holds_the_presets_and_custom_only():
    names = {f[:-3] for f in os.listdir(os.path.dirname(configs.path("alexnet")))
             if f.endswith(".py")}
    assert names == {*configs.PRESETS, "custom", "command_line", "__init__"}


CONFIG_ERRORS = [  # (command line, the whole message)
    (["--model=alexnet", "--config=jaxnets/configs/alexnet.py"],
     "--model=alexnet and --config=jaxnets/configs/alexnet.py: give one of them "
     "(--model=NAME is short for a --config file)"),
    (["--model=resnet"],
     "unknown model 'resnet'; choose a preset: lenet_mnist, alexnet, rnn_sentiment, "
     "rnn_charlm, rnn_captions, rnn_translate, rnn_video (see --model=list), or "
     "package.module:factory for your own model"),
    (["--config.image_shape.x=1"],
     "--config.image_shape.x: image_shape is a single value ((32, 32, 1)); set it with "
     "--config.image_shape=..."),
    (["--model=rnn_sentiment", "--config.model_kwargs.cell.x=1"],
     "--config.model_kwargs.cell.x: model_kwargs.cell is a single value ('vanilla'); set it "
     "with --config.model_kwargs.cell=..."),
    (["--config.smoke_overrides.nope.deeper=1"],
     "unknown config field 'smoke_overrides.nope' in --config.smoke_overrides.nope.deeper; "
     "valid fields there: batch_size, checkpoint_every_steps, eval_batch_size, "
     "eval_every_steps, eval_max_batches, log_every_steps, num_steps, warmup_steps"),
]


@pytest.mark.parametrize("args, message", CONFIG_ERRORS, ids=[a[-1] for a, _ in CONFIG_ERRORS])
def test_a_bad_command_line_is_one_line_word_for_word(args, message):
    with pytest.raises(ConfigError) as error:
        command_line.parse(["run", *args])
    assert str(error.value) == message


def test_an_unknown_smoke_override_is_named_where_it_was_set():
    for smoke in ("False", "True"):  # a smoke run has copied it to the top
        with pytest.raises(ConfigError, match=r"^unknown config field\(s\) smoke_overrides.nope;"):
            parse("--config.smoke_overrides.nope=1", f"--config.smoke={smoke}")


def test_the_config_is_built_without_jax_or_tensorflow():
    code = ("import sys\nfrom jaxnets.configs import command_line\n"
            "command_line.parse(['run', '--model=rnn_sentiment', '--epochs=1'])\n"
            "print(sorted(m for m in ('jax', 'tensorflow') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]


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
    config = configs.get(name, {"smoke": True, "progress": False})
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
