"""A quiet terminal: commands print jaxnets' own lines; JAXNETS_VERBOSE=1 brings back the
libraries' (TensorFlow's C++ start-up lines, TFDS's and orbax's warnings, TFDS's bars)."""

import logging
import os
import re
import subprocess
import sys

import pytest

import data_fixtures
from jaxnets import cli
from jaxnets.data import tf_setup
from test_data_public import offline_env

TESTS = os.path.dirname(os.path.abspath(__file__))
# A library's line: TF's C++ (absl) records and preamble, TFDS's and orbax's absl records,
# orbax's read-only warnings, and terminal control (bars: carriage returns, cursor moves).
LIBRARY_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:|absl::InitializeLog|oneDNN|orbax|"
                          r"read.only|cache_dataset_ops|\r|\x1b\[", re.MULTILINE)
TF_STARTUP = ("WARNING: All log messages before absl::InitializeLog() is called are written "
              "to STDERR\n")
TF_INFO = ("I0000 00:00:1796533253.349947    9547 port.cc:153] oneDNN custom operations are "
           "on. You may see slightly different numerical results\n")
TF_ERROR = "E0000 00:00:1796533253.349947    9547 cuda_dnn.cc:8310] Unable to register\n"


def run(*args, verbose=False, env=None):
    env = dict(env or {**os.environ, "PYTHONPATH": os.getcwd()})
    env.pop(cli.VERBOSE_ENV, None)
    if verbose:
        env[cli.VERBOSE_ENV] = "1"
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=300)


def library_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines(keepends=True) if LIBRARY_LINE.search(line)]


# -- the pieces, in this process --------------------------------------------------------


def test_only_tf_startup_info_and_warnings_are_dropped():
    python_warning = "/x.py:3: UserWarning: something\n"
    text = TF_STARTUP + TF_INFO + python_warning + TF_ERROR + "W1206 05:00:55.198609 1 a.cc:9] w\n"
    assert tf_setup.without_startup_lines(text) == python_warning + TF_ERROR


def test_hidden_startup_lines_keep_other_output_and_all_of_a_failure(capfd):
    with tf_setup.startup_lines_hidden():
        os.write(2, (TF_STARTUP + TF_INFO + "a real problem\n").encode())
        print("from python", file=sys.stderr)  # (under capfd it skips fd 2: order differs)
    assert sorted(capfd.readouterr().err.splitlines()) == ["a real problem", "from python"]
    with pytest.raises(ImportError), tf_setup.startup_lines_hidden():
        os.write(2, TF_INFO.encode())
        raise ImportError("no tensorflow")
    assert capfd.readouterr().err == TF_INFO  # a failed import shows everything it printed


def test_quiet_library_logs_keep_jaxnets_warnings_and_library_errors():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        cli.quiet_library_logs()
        logging.getLogger("absl").warning("Variant folder has no dataset_info.json")  # TFDS
        logging.getLogger("tensorflow").warning("retracing")
        logging.getLogger("absl").error("a library's error")
        logging.warning("jaxnets' own warning")  # the root logger, as loop.py and rundir.py
    finally:
        logging.getLogger().removeHandler(handler)
        for name in cli.LIBRARY_LOGGERS:
            logging.getLogger(name).removeFilter(cli._errors_only)  # pylint: disable=protected-access
    assert [r.getMessage() for r in records] == ["a library's error", "jaxnets' own warning"]


# -- commands -----------------------------------------------------------------------------


def test_an_offline_public_dataset_is_one_line_exit_2_and_no_workdir(tmp_path):
    workdir = tmp_path / "run"
    args = ["-m", "jaxnets.experiments.run", "--model=lenet_mnist", "--config.dataset=mnist",
            f"--config.data_dir={tmp_path}", f"--workdir={workdir}"]
    done = run(*args, env=offline_env())
    assert done.returncode == 2 and done.stdout == "", done.stderr[-3000:]
    assert done.stderr.startswith(f"error: dataset 'mnist' is not prepared in {tmp_path} and "
                                  "cannot be downloaded from here (")
    assert done.stderr.endswith("or use the embedded 'mnist5k' (--dataset=mnist5k)\n")
    assert done.stderr.count("\n") == 1 and not workdir.exists()
    loud = run(*args, verbose=True, env=offline_env())  # TFDS's own warning comes back
    assert "has no dataset_info.json" in loud.stderr and loud.returncode == 2


def test_the_data_command_says_the_same_offline(tmp_path):
    done = run("-m", "jaxnets.data", "--dataset=cifar10", f"--data_dir={tmp_path}",
               env=offline_env())
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-3000:]
    assert done.stderr.startswith("error: dataset 'cifar10' is not prepared in")


@pytest.mark.slow  # two TensorFlow imports: ~10 s
def test_a_first_preparation_is_one_line_per_stage_and_verbose_brings_tensorflow_back(
        tmp_path):
    """Where stderr is not a terminal, TFDS's bars (carriage returns, cursor moves) and its
    stdout lines are left out; JAXNETS_VERBOSE=1 shows TensorFlow's start-up lines again."""
    script = (
        f"import pathlib, runpy, sys; sys.path.insert(0, {TESTS!r})\n"
        "from unittest import mock\n"
        "import data_fixtures\n"
        "from jaxnets.data import mnist5k\n"
        f"data_dir = pathlib.Path({str(tmp_path)!r})\n"
        "data_fixtures.write_package_files(data_dir / 'downloads' / 'manual')\n"
        "sys.argv = ['jaxnets.data', '--dataset=mnist5k', '--examples=2', "
        "f'--data_dir={data_dir}']\n"
        "with mock.patch.object(mnist5k, 'SOURCE', data_fixtures.fixture_source(mnist5k)):\n"
        "    runpy.run_module('jaxnets.data', run_name='__main__')\n")
    done = run("-c", script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("mnist5k 1.0.0 in ")  # not TFDS's "Downloading and ..."
    lines = done.stderr.splitlines()
    assert lines[0] == f"jaxnets.data: preparing mnist5k in {tmp_path}/mnist5k/1.0.0 (once)"
    assert re.fullmatch(r"jaxnets\.data: prepared mnist5k in \d+ s", lines[-1]), lines
    assert all(line.startswith("jaxnets.data: ") for line in lines)
    assert not library_lines(done.stderr)

    loud = run("-m", "jaxnets.data", "--dataset=mnist5k", "--examples=2",
               f"--data_dir={tmp_path}", verbose=True)  # prepared now: no stage lines
    assert loud.returncode == 0 and loud.stdout == done.stdout, loud.stderr[-3000:]
    if not library_lines(loud.stderr):  # only where TF prints nothing at import at all
        plain = run("-c", "import tensorflow")
        assert not library_lines(plain.stderr), (loud.stderr, plain.stderr)
        pytest.skip("this TensorFlow prints no start-up lines")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lenet_mnist", "rnn_sentiment"])
def test_a_run_and_its_resumption_print_jaxnets_lines_only(model, tmp_path):
    """The rerun resumes from checkpoints/ (orbax reads) and peeks at the eval data; even
    verbose, neither orbax's read-only warnings nor tf.data's partial-cache one appear."""
    args = ["-m", "jaxnets.experiments.run", f"--model={model}", "--config.smoke=True",
            "--config.num_steps=4", f"--config.data_dir={data_fixtures.prepared_data_dir()}",
            f"--workdir={tmp_path}"]
    first = run(*args)
    assert first.returncode == 0 and first.stderr == "", first.stderr[-3000:]
    assert first.stdout.startswith(f"[{model}] ")
    again = run(*args, verbose=True)
    assert again.returncode == 0 and "resuming at step 4" in again.stdout, again.stderr[-3000:]
    warnings = [line for line in library_lines(again.stderr)
                if re.search(r"orbax|read.only|cache_dataset_ops", line)]
    assert not warnings
