"""Without the extras: `pip install jaxnets` alone trains a model on numpy arrays, and a
TFDS dataset says in one line which extra to install.

The `data` extra brings TensorFlow and TFDS, the `plots` extra matplotlib and tensorboardX
(pyproject.toml). Each test here runs a fresh Python in which those four packages are
absent as far as the import system can tell: `None` in sys.modules (as in
jaxnets/import_guard.py), so `import tensorflow` raises ModuleNotFoundError and
`importlib.util.find_spec("tensorflow")` answers None, as for a package never installed.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EXTRAS = ("tensorflow", "tensorflow_datasets", "matplotlib", "tensorboardX")

# python -c WITHOUT_EXTRAS (-m MODULE | SCRIPT) ARGS...: runs it with EXTRAS not installed.
WITHOUT_EXTRAS = f"""
import runpy, sys
for name in {EXTRAS!r}:
    sys.modules[name] = None
if sys.argv[1] == "-m":
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""

# After README's example (its MLP, data and result): a run stopped by Ctrl-C at step 20
# resumes from its checkpoint to the same parameters; and nothing got around the block.
RESUME_AND_REPORT = """
import json
import jax
import numpy as np


class CtrlC:
    '''README's data, with a Ctrl-C when batch `at` is due.'''

    def __init__(self, data, at):
        self.data, self.at, self.served = data, at, 0
        self.steps_per_epoch, self.eval_batches = data.steps_per_epoch, data.eval_batches

    def train_epoch(self, epoch):
        for batch in self.data.train_epoch(epoch):
            if self.served == self.at:
                raise KeyboardInterrupt
            self.served += 1
            yield batch


config = {"num_epochs": 3, "learning_rate": 1e-3}
try:
    fit(MLP(), CtrlC(data, 20), config, workdir="runs/mlp_resumed")
except KeyboardInterrupt:
    pass
resumed = fit(MLP(), data, config, workdir="runs/mlp_resumed")
same = jax.tree.map(np.array_equal, resumed.state.params, result.state.params)
print(json.dumps({
    "steps": [result.summary["step"], resumed.summary["start_step"], resumed.summary["step"]],
    "same_params": all(jax.tree.leaves(same)),
    "imported": sorted(m for m in sys.modules if m.split(".")[0] in EXTRAS
                       and sys.modules[m] is not None),
}))
"""


def readme_example() -> str:
    """The first Python block of README's "Your own model" section."""
    section = (REPO / "README.md").read_text().split("### Your own model", 1)[-1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block and "ArrayData" in block.group(1) and "fit(" in block.group(1), (
        "README's 'Your own model' section has no fit on ArrayData to test")
    return block.group(1)


def python(*args, cwd) -> subprocess.CompletedProcess:
    """A fresh `python ARGS` in `cwd` that imports this checkout's jaxnets."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def without_extras(*args, cwd) -> subprocess.CompletedProcess:
    return python("-c", WITHOUT_EXTRAS, *args, cwd=cwd)


def test_readme_own_model_trains_checkpoints_and_resumes_without_the_extras(tmp_path):
    script = tmp_path / "own_model.py"
    script.write_text(f"import sys\nEXTRAS = {EXTRAS!r}\n" + readme_example()
                      + RESUME_AND_REPORT)
    done = without_extras(str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"steps": [36, 20, 36], "same_params": True, "imported": []}
    assert "custom: test accuracy" in done.stdout  # README's print(result.summary_line)
    note = ('note: tensorboardX and matplotlib are not installed, so this run writes no '
            'TensorBoard events and no learning_curve.png (metrics.jsonl has every number): '
            'pip install "jaxnets[plots]" adds them')
    assert done.stderr.count(note) == 1, done.stderr[-3000:]  # three fits, said once
    run = tmp_path / "runs" / "mlp"
    assert sorted(os.listdir(run / "checkpoints")) == ["36"]
    assert {"config.json", "metrics.jsonl", "summary.json", "train.log"} <= set(os.listdir(run))
    assert not (run / "tensorboard").exists() and not (run / "learning_curve.png").exists()
    assert (run / "train.log").read_text().startswith(note)


@pytest.mark.parametrize("command, dataset", [
    (["-m", "jaxnets.experiments.run", "--model=rnn_sentiment", "--workdir=run"],
     "rt_sentences"),
    (["-m", "jaxnets.experiments.run", "--model=rnn_captions", "--workdir=run",
      "--config.data_dir=tfds"], "mnist5k"),  # a sequence task built from a TFDS dataset
    (["-m", "jaxnets.data", "--dataset=mnist5k", "--data_dir=tfds"], "mnist5k"),
])
def test_a_tfds_dataset_without_the_data_extra_is_one_line_naming_it(command, dataset,
                                                                     tmp_path):
    done = without_extras(*command, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, (
        f"error: dataset '{dataset}' needs TensorFlow and TFDS (tensorflow is not installed): "
        'install them with pip install "jaxnets[data]"\n'))
    assert os.listdir(tmp_path) == []  # no workdir, no data dir


def test_importing_jaxnets_imports_none_of_the_extras_until_a_dataset_needs_them(tmp_path):
    """With every extra installed: importing the packages (data included) stays cheap."""
    code = ("import sys\n"
            "import jaxnets.data, jaxnets.inference, jaxnets.models, jaxnets.train.loop\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))\n")
    done = python("-c", code, *EXTRAS, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr[-3000:]


def test_the_note_names_what_each_missing_package_leaves_out():
    from jaxnets.train.reporting import missing_note
    assert missing_note(["matplotlib"]) == (
        "note: matplotlib is not installed, so this run writes no learning_curve.png "
        '(metrics.jsonl has every number): pip install "jaxnets[plots]" adds them')
    assert missing_note(["tensorboardX"]).startswith(
        "note: tensorboardX is not installed, so this run writes no TensorBoard events (")
