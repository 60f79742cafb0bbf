"""The run directory (jaxnets/train/rundir.py): a refused command leaves the workdir byte for
byte as it was, metrics.jsonl survives damaged lines, a failed restore is one line that says
what is damaged and recommends only a checkpoint that reads, a non-finite eval loss is said
on the terminal."""

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys

import flax.linen as nn
import numpy as np
import pytest

from jaxnets.train import ArrayData, ConfigError, fit, train_and_evaluate
from jaxnets.train.config import default_config, with_smoke
from jaxnets.train.rundir import RunDir

CONFIG = {"num_epochs": 1, "log_every_steps": 2, "checkpoint_every_steps": 4,
          "progress": False, "learning_rate": 0.01}


class Tiny(nn.Module):
    width: int = 8

    @nn.compact
    def __call__(self, image, *, train=False):
        return nn.Dense(3)(nn.relu(nn.Dense(self.width)(image.reshape(image.shape[0], -1))))


def tiny_arrays():
    rng = np.random.default_rng(0)
    return {"image": rng.normal(size=(64, 2, 2, 1)).astype(np.float32),
            "label": rng.integers(0, 3, 64).astype(np.int32)}


def tiny_data(eval_arrays=None):
    arrays = tiny_arrays()
    return ArrayData(arrays, arrays if eval_arrays is None else eval_arrays, batch_size=8)


def tree(path) -> dict:
    """Every file and directory under `path` with its bytes' hash: the workdir's state."""
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), path) + "/"] = None
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return found


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished fit run (8 steps, checkpoints at 4 and 8)."""
    workdir = str(tmp_path_factory.mktemp("finished"))
    fit(Tiny(), tiny_data(), CONFIG, workdir)
    return workdir


def _refused_config(workdir):
    fit(Tiny(), tiny_data(), {**CONFIG, "learning_rate": 0.02}, workdir)


def _refused_model(workdir):  # the same config, another model: its checkpoint cannot restore
    fit(Tiny(width=16), tiny_data(), CONFIG, workdir)


def _refused_damaged_config(workdir):
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write("{not json")
    fit(Tiny(), tiny_data(), CONFIG, workdir)


def _refused_in_use(workdir):
    lock = os.path.join(workdir, ".lock")
    with open(lock, "a+") as held:  # another run holds it, and removes it as RunDir does
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            fit(Tiny(), tiny_data(), CONFIG, workdir)
        finally:
            os.remove(lock)
            fcntl.flock(held, fcntl.LOCK_UN)


def _refused_other_process_count(workdir):
    from jaxnets.train.config import resolve
    run = RunDir(workdir)
    with run.claimed():
        run.resume_step(resolve(CONFIG), process_count=2)


REFUSALS = {"another config": (_refused_config, "holds a run with another config"),
            "another model": (_refused_model, "cannot be restored"),
            "damaged config.json": (_refused_damaged_config, "config.json is damaged"),
            "in use": (_refused_in_use, "is in use by another run"),
            "another process count": (_refused_other_process_count, "written by 1 process")}


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_refused_command_leaves_the_workdir_byte_for_byte(finished, tmp_path, refusal):
    import shutil
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    refuse, message = REFUSALS[refusal]
    if refusal == "damaged config.json":  # the damage is the user's: compare after it
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write("{not json")
    before = tree(workdir)
    with pytest.raises(ConfigError, match=message):
        refuse(workdir)
    assert tree(workdir) == before


def test_a_refused_command_on_a_new_workdir_leaves_no_directory(tmp_path):
    workdir = tmp_path / "new"
    with pytest.raises(ConfigError, match="learning_rate must be a finite number > 0"):
        fit(Tiny(), tiny_data(), {**CONFIG, "learning_rate": -1.0}, str(workdir))

    class Broken(nn.Module):  # fails while the state is shaped, after the workdir is claimed
        @nn.compact
        def __call__(self, image, *, train=False):
            raise ValueError("no such layer")

    with pytest.raises(ValueError, match="no such layer"):
        fit(Broken(), tiny_data(), CONFIG, str(workdir))
    assert not workdir.exists()


def sequence_config(**changes):
    config = with_smoke(default_config())
    config.update({"model": "seq2seq", "dataset": "number_words", "num_steps": 4,
                   "batch_size": 8, "eval_batch_size": 100, "eval_max_batches": 1,
                   "checkpoint_every_steps": 4, "progress": False, **changes})
    config.model_kwargs = {"embed_dim": 8, "hidden_size": 8}
    return config


def test_a_refused_command_on_a_run_without_config_json_leaves_it_loadable(tmp_path):
    """The review's case: config.json deleted (the advice for a damaged one), then a command
    for another model. It is refused by model.json, writes nothing, and predict still works."""
    from jaxnets import inference
    workdir = str(tmp_path / "run")
    train_and_evaluate(sequence_config(), workdir)
    os.remove(os.path.join(workdir, "config.json"))
    before = tree(workdir)
    other = sequence_config()
    other.model_kwargs = {"embed_dim": 8, "hidden_size": 16}
    with pytest.raises(ConfigError, match=r"another config \(model_kwargs: .*'hidden_size': 8"):
        train_and_evaluate(other, workdir)
    assert tree(workdir) == before
    with open(os.path.join(workdir, "config.json"), "w") as f:  # as it was, for load_run
        json.dump(json.loads(sequence_config().to_json()), f)
    assert inference.load_run(workdir).translate("12")  # decodes something


def test_damaged_metrics_lines_are_skipped_with_one_warning_each(tmp_path, capfd):
    workdir = str(tmp_path)
    import shutil
    fit(Tiny(), tiny_data(), CONFIG, workdir)
    shutil.rmtree(os.path.join(workdir, "checkpoints", "8"))  # resume from step 4
    path = os.path.join(workdir, "metrics.jsonl")
    good = open(path, "rb").read()
    with open(path, "ab") as f:  # a record, then the three kinds of damage
        f.write(b'{"foo": 1}\n\xff\xfe not utf-8\n{"step": 9, "spl')
    capfd.readouterr()
    result = fit(Tiny(), tiny_data(), CONFIG, workdir)
    assert result.summary["start_step"] == 4
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    lines = good.count(b"\n")
    assert warnings == [
        f"warning: {path} line {lines + 1} is damaged (not a record with 'step' and 'split'): "
        "skipped",
        f"warning: {path} line {lines + 2} is damaged (not UTF-8): skipped",
        f"warning: {path} line {lines + 3} is damaged (not JSON: Unterminated string "
        "starting at): skipped"]
    records = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8]


def test_a_resume_without_new_records_to_drop_leaves_metrics_untouched(finished, tmp_path):
    import shutil
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    path = os.path.join(workdir, "metrics.jsonl")
    RunDir(workdir, primary=True).keep_metrics_until(8)
    before = os.stat(path)
    RunDir(workdir, primary=True).keep_metrics_until(8)
    assert os.stat(path).st_ino == before.st_ino  # not rewritten


def test_a_failed_restore_is_one_line_and_nothing_after_it(tmp_path):
    workdir = str(tmp_path / "run")
    command = [sys.executable, "-m", "jaxnets.experiments.run", "--model=rnn_translate",
               "--config.smoke=True", f"--workdir={workdir}", "--config.progress=False"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run(command, check=True, capture_output=True, timeout=300, env=env)
    os.remove(os.path.join(workdir, "config.json"))
    step_dir = os.path.join(workdir, "checkpoints", "8")
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        for name in files:
            if "ocdbt" in root or name.startswith("d"):
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(10)
    before = tree(workdir)
    for _ in range(3):  # orbax's reads in flight end in a race with its loop: try thrice
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = [line for line in result.stderr.splitlines()
                 if line.strip() and not line.startswith("I0000")]  # TensorFlow's INFO
        assert len(lines) == 1, result.stderr[-3000:]
        assert lines[0].startswith("error: checkpoint step 8 in ") and "cannot be restored" in \
            lines[0]
    assert tree(workdir) == before


def _truncate_arrays(step_dir):
    """Cuts every data file of a checkpoint's state short (the arrays' bytes)."""
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        for name in files:
            if os.path.basename(root) == "d":
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(10)


def _refused_resume(workdir) -> str:
    with pytest.raises(ConfigError) as refused:
        fit(Tiny(), tiny_data(), CONFIG, workdir)
    message = str(refused.value)
    assert "\n" not in message and "pybind11" not in message and "<bound method" not in message
    return message


def test_a_damaged_checkpoint_is_named_and_the_older_one_recommended_really_resumes(
        finished, tmp_path):
    import shutil
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    checkpoints = os.path.join(workdir, "checkpoints")
    _truncate_arrays(os.path.join(checkpoints, "8"))
    message = _refused_resume(workdir)
    assert re.fullmatch(
        rf"checkpoint step 8 in {checkpoints} cannot be restored: array \S+ is truncated "
        rf"\(file state/d/\w+\); if it is damaged, delete {checkpoints}/8 to resume from "
        r"step 4 \(checked: it reads\)", message), message
    shutil.rmtree(os.path.join(checkpoints, "8"))  # as it says
    result = fit(Tiny(), tiny_data(), CONFIG, workdir)
    assert result.summary["start_step"] == 4 and result.summary["step"] == 8


def test_when_every_checkpoint_is_damaged_none_is_recommended_and_moving_them_starts_over(
        finished, tmp_path):
    import shutil
    workdir = str(tmp_path / "run")
    shutil.copytree(finished, workdir)
    checkpoints = os.path.join(workdir, "checkpoints")
    for step in ("4", "8"):
        _truncate_arrays(os.path.join(checkpoints, step))
    message = _refused_resume(workdir)
    assert message.startswith(f"checkpoint step 8 in {checkpoints} cannot be restored: array ")
    assert message.endswith(f"no older checkpoint reads either: move {checkpoints} away (mv "
                            f"{checkpoints} {checkpoints}.damaged) to start over"), message
    assert "resume from" not in message
    os.rename(checkpoints, checkpoints + ".damaged")  # as it says
    result = fit(Tiny(), tiny_data(), CONFIG, workdir)
    assert result.summary["start_step"] == 0 and result.summary["step"] == 8


def test_a_non_finite_eval_loss_is_one_warning_on_the_terminal(tmp_path, capfd):
    broken = tiny_arrays()
    broken["image"][5] = np.inf  # a broken input in the eval data
    fit(Tiny(), tiny_data(eval_arrays=broken), {**CONFIG, "num_epochs": 2}, str(tmp_path),
        name="tiny")  # evaluated twice: after each epoch
    assert capfd.readouterr().err.splitlines() == [
        "warning: [tiny] step 8: the eval loss is not finite: check the eval data (a label "
        "outside 0..classes-1, or a NaN or Inf in an input)"]
    log = (tmp_path / "train.log").read_text()
    assert "step 8: the eval loss is not finite" in log and "step 16: the eval loss" in log


def test_a_lock_file_the_command_made_goes_with_it_and_a_new_holder_takes_the_new_one(
        tmp_path):
    """The lock file is removed when its maker lets go; a lock someone took on the removed
    file (opened before the removal) does not keep the next command out, and that command
    locks a file the path names (RunDir checks the path still names what it locked)."""
    run = RunDir(str(tmp_path))
    with run.claimed():
        assert os.path.exists(tmp_path / ".lock")
        stale = open(tmp_path / ".lock", "a+")  # opened while held, locked after removal
    assert not os.path.exists(tmp_path / ".lock")
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a lock on a removed file: no lock
    try:
        with RunDir(str(tmp_path)).claimed():
            assert os.path.exists(tmp_path / ".lock")  # a new file, not the stale one
            assert not os.path.samestat(os.stat(tmp_path / ".lock"), os.fstat(stale.fileno()))
    finally:
        stale.close()
    assert sorted(os.listdir(tmp_path)) == []
