"""A full disk (a small tmpfs mounted for each test): the run stops with one line naming the
file that could not be written and the last good checkpoint (the CLI exits 74), leaves no
partial checkpoint, damages nothing written before, and once space is freed the same
command resumes and ends with bitwise the parameters of a run that was never stopped."""

import contextlib
import glob
import json
import os
import re
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxnets.train import ArrayData, fit
from jaxnets.train.checkpoint import WriteError, saved_steps, unreadable
from jaxnets.train.config import resolve
from jaxnets.train.reporting import plot_learning_curve
from jaxnets.train.rundir import RunDir

CONFIG = {"num_epochs": 3, "log_every_steps": 1, "checkpoint_every_steps": 4,
          "keep_checkpoints": 100, "progress": False, "learning_rate": 0.05}
CHECKPOINT_MIN = 64 * 1024  # a Tiny checkpoint is 17 files: at least 17 pages of 4 KiB
NO_SPACE = "no space left on device writing"


class Tiny(nn.Module):
    @nn.compact
    def __call__(self, image, *, train):
        x = nn.relu(nn.Dense(16)(image.reshape((image.shape[0], -1))))
        return nn.Dense(3)(nn.Dropout(0.3, deterministic=not train)(x))


class FillingData(ArrayData):
    """The training data, and another program that fills the disk: once checkpoint `after`
    is on disk, before the next batch, it leaves only `free` bytes of `disk` free."""

    def __init__(self, disk=None, after=4, free=0):
        rng = np.random.default_rng(0)
        arrays = {"image": rng.normal(size=(64, 2, 2, 1)).astype(np.float32),
                  "label": rng.integers(0, 3, 64).astype(np.int32)}
        super().__init__(arrays, arrays, batch_size=8)
        self.disk, self.after, self.free = disk, after, free

    def train_epoch(self, epoch, start_step=0):
        for batch in super().train_epoch(epoch, start_step):
            if self.disk and os.path.isdir(os.path.join(self.disk, "run", "checkpoints",
                                                        str(self.after))):
                fill(self.disk, self.free)
                self.disk = None
            yield batch


def fill(disk, free: int) -> None:
    """Makes (or grows) the file `disk`/filler to leave `free` bytes free on the disk."""
    stat = os.statvfs(disk)
    fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size + stat.f_bavail * stat.f_frsize - free
        os.posix_fallocate(fd, 0, max(size, 1))
    finally:
        os.close(fd)


@contextlib.contextmanager
def tmpfs(path, size: str):
    """A tmpfs of `size` mounted on `path`; skips the test where mounting is not allowed."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                  str(path)], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs "
                    "CAP_SYS_ADMIN")
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)


@pytest.fixture
def disk(tmp_path):
    with tmpfs(tmp_path / "disk", "4M") as path:
        yield path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run never stopped (on the ordinary disk)."""
    return fit(Tiny(), FillingData(), CONFIG, str(tmp_path_factory.mktemp("reference")))


def params_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def check_stopped(message: str, workdir: str) -> int:
    """The one-line message names what failed and the newest complete checkpoint, which
    reads; no partial checkpoint is left. Returns that checkpoint's step."""
    assert "\n" not in message
    found = re.fullmatch(
        rf"{NO_SPACE} (checkpoint (\d+) in {workdir}/checkpoints|metrics\.jsonl in {workdir}"
        rf"|train\.log in {workdir}|tensorboard/ in {workdir}): the last good checkpoint "
        r"is step (\d+); free space, then run the same command again to resume from it",
        message)
    assert found, message
    good, checkpoints = int(found[3]), os.path.join(workdir, "checkpoints")
    assert good == saved_steps(checkpoints)[-1]
    assert found[2] is None or int(found[2]) > good
    assert all(unreadable(checkpoints, step) is None for step in saved_steps(checkpoints))
    assert not glob.glob(os.path.join(checkpoints, "*.orbax-checkpoint-tmp*"))
    return good


def check_logs_whole(workdir: str) -> None:
    """No torn line in metrics.jsonl or train.log."""
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        assert all(json.loads(line)["split"] for line in f)
    with open(os.path.join(workdir, "train.log"), encoding="utf-8") as f:
        assert f.read().endswith("\n")


def test_a_checkpoint_the_full_disk_refuses_stops_the_run_and_a_rerun_resumes_bitwise(
        disk, reference):
    config = {**CONFIG, "log_every_steps": 24, "eval_every_steps": 24}  # no log writes
    workdir = os.path.join(disk, "run")  # racing the checkpoints for the space
    with pytest.raises(WriteError) as stopped:
        fit(Tiny(), FillingData(disk, after=4, free=CHECKPOINT_MIN // 2), config, workdir)
    assert stopped.value.errno == 28 and NO_SPACE + " checkpoint" in str(stopped.value)
    good = check_stopped(str(stopped.value), workdir)
    fill(disk, CHECKPOINT_MIN // 2)  # as full as it was (the partial checkpoint is gone)
    with pytest.raises(WriteError) as again:  # still full: the same one line
        fit(Tiny(), FillingData(), config, workdir)
    assert str(again.value) == str(stopped.value)
    os.remove(os.path.join(disk, "filler"))
    resumed = fit(Tiny(), FillingData(), config, workdir)
    assert resumed.summary["start_step"] == good and resumed.summary["step"] == 24
    assert params_equal(resumed.state.params, reference.state.params)


def test_any_write_the_full_disk_refuses_stops_the_run_in_one_line(disk, reference):
    """No space at all: the first of the checkpoint, metrics.jsonl, train.log and
    TensorBoard writes to need a new page fails, whichever it is."""
    workdir = os.path.join(disk, "run")
    with pytest.raises(WriteError) as stopped:
        fit(Tiny(), FillingData(disk, after=4, free=0), CONFIG, workdir)
    check_stopped(str(stopped.value), workdir)
    check_logs_whole(workdir)
    os.remove(os.path.join(disk, "filler"))
    resumed = fit(Tiny(), FillingData(), CONFIG, workdir)
    assert params_equal(resumed.state.params, reference.state.params)


def _config_json(run):
    run.begin(resolve({"note": "x" * 20000}))


def _summary_json(run):
    run.write_summary({"note": "x" * 20000})


def _learning_curve(run):
    records = [{"step": s, "split": "train", "loss": 1 / s, "accuracy": s / 100}
               for s in range(1, 100)]
    run.write_curve(lambda path: plot_learning_curve(records, path, title="full"))


def _metrics(run):
    run.append_metrics({"step": 9, "split": "train", "note": "x" * 20000})


def _train_log(run):
    log = run.open_log()
    try:
        log.write("x" * 20000 + "\n")
    finally:
        log.close()


WRITERS = {"config.json": _config_json, "summary.json": _summary_json,
           "learning_curve.png": _learning_curve, "metrics.jsonl": _metrics,
           "train.log": _train_log}


@pytest.mark.parametrize("name", WRITERS)
def test_a_run_file_the_full_disk_refuses_is_named_and_keeps_its_old_bytes(disk, name):
    run = RunDir(os.path.join(disk, "run"), primary=True)
    os.makedirs(run.path)
    with open(run.file(name), "wb") as f:  # the version written before
        f.write(b'{"step": 1, "split": "train"}\n' if name == "metrics.jsonl" else b"old\n")
    fill(disk, 0)
    before = {n: open(run.file(n), "rb").read() for n in os.listdir(run.path)}
    with pytest.raises(WriteError, match=rf"^{NO_SPACE} {re.escape(name)} in {run.path}$"):
        WRITERS[name](run)
    assert {n: open(run.file(n), "rb").read() for n in os.listdir(run.path)} == before


@pytest.mark.slow
def test_the_cli_on_a_full_disk_says_one_line_exits_74_and_resumes_bitwise(tmp_path):
    """rnn_translate's smoke run keeping every checkpoint (600 KB each) on a 3 MB disk."""
    def run(workdir):
        command = [sys.executable, "-m", "jaxnets.experiments.run", "--model=rnn_translate",
                   "--config.smoke=True", "--config.num_steps=40", "--config.steps_per_call=1",
                   "--config.checkpoint_every_steps=4", "--config.keep_checkpoints=100",
                   "--config.progress=False", f"--workdir={workdir}"]
        return subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})

    def final_params(workdir):
        return RunDir(workdir, primary=True).restore_params()

    with tmpfs(tmp_path / "disk", "3M") as disk:
        workdir = os.path.join(disk, "run")
        stopped = run(workdir)
        assert stopped.returncode == 74, stopped.stderr[-3000:]
        lines = [line for line in stopped.stderr.splitlines()
                 if line.strip() and not line.startswith("I0000")]  # TensorFlow's INFO
        assert len(lines) == 1 and lines[0].startswith("error: "), stopped.stderr[-3000:]
        check_stopped(lines[0][len("error: "):], workdir)
        subprocess.run(["mount", "-o", "remount,size=64M", disk], check=True, timeout=30)
        resumed = run(workdir)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        reference = run(str(tmp_path / "reference"))
        assert reference.returncode == 0, reference.stderr[-3000:]
        assert params_equal(final_params(workdir), final_params(str(tmp_path / "reference")))
