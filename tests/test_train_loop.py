"""The loop end to end on tiny in-memory data: reports, exact resume, NaN guard, custom models."""

import glob
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxnets import runtime_options
from jaxnets.train import ArrayData, ConfigError, NonFiniteError, fit
from jaxnets.train.checkpoint import saved_steps
from jaxnets.train.reporting import Reporter
from jaxnets.train.rundir import RunDir

CONFIG = {"num_epochs": 3, "log_every_steps": 4, "checkpoint_every_steps": 5,
          "progress": False, "optimizer": "adamw", "weight_decay": 0.01,
          "learning_rate": 0.01, "schedule": "warmup_cosine", "warmup_steps": 3}


class TinyNet(nn.Module):
    """Dense + BatchNorm + dropout: exercises params, model_state and the RNG."""

    @nn.compact
    def __call__(self, image, *, train):
        x = image.reshape((image.shape[0], -1))
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(16)(x)))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(3)(x)


def toy_arrays(n, seed):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(3, 4, 4, 1)) * 2
    label = rng.integers(0, 3, n).astype(np.int32)
    image = (centers[label] + rng.normal(size=(n, 4, 4, 1))).astype(np.float32)
    return {"image": image, "label": label}


def toy_data(**kwargs):
    return ArrayData(toy_arrays(128, 0), toy_arrays(50, 1), batch_size=16, seed=0, **kwargs)


class Interrupting:
    """Wraps a dataset and raises `error` when batch number `at` (counted over epochs) is due."""

    def __init__(self, data, at, error):
        self.data, self.at, self.error, self.served = data, at, error, 0
        self.steps_per_epoch = data.steps_per_epoch
        self.eval_batches = data.eval_batches

    def train_epoch(self, epoch):
        for batch in self.data.train_epoch(epoch):
            if self.served == self.at:
                raise self.error
            self.served += 1
            yield batch


def leaves_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run, shared by the resume tests."""
    return fit(TinyNet(), toy_data(), CONFIG, str(tmp_path_factory.mktemp("ref")))


def test_the_trainer_driven_by_hand_is_fit_without_its_schedule(reference):
    """The public step API (README): the same calls give the same parameters as `fit`."""
    from jaxnets.train import Trainer
    from jaxnets.train.config import resolve
    from jaxnets.train.inputs import EPOCH_END, as_inputs
    from jaxnets.train.model_api import as_model
    trainer = Trainer(as_model(TinyNet()), as_inputs(toy_data()), resolve(CONFIG))
    calls = 0
    for item in trainer.batches():
        if item is EPOCH_END:
            trainer.end_epoch()
        else:
            assert trainer.train_on(item) == (16, 1)  # (examples, steps) of the call
            calls += 1
    assert calls == 24 and (trainer.step, trainer.epoch) == (24, 2)
    assert jax.tree.all(jax.tree.map(np.array_equal, trainer.unreplicated_state().params,
                                     reference.state.params))
    metrics, cut = trainer.evaluate()
    assert not cut and metrics == pytest.approx(reference.eval)


def test_fit_learns_and_writes_every_report(reference):
    workdir = reference.summary["workdir"]
    assert reference.eval["accuracy"] > 0.8 and reference.eval["examples"] == 50
    assert int(reference.state.step) == 24 == reference.summary["step"]
    for name in ("metrics.jsonl", "learning_curve.png", "summary.json", "train.log",
                 "config.json"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    assert any(f.startswith("events.out.tfevents")
               for f in os.listdir(os.path.join(workdir, "tensorboard")))
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in records if r["split"] == "train"] == [4, 8, 12, 16, 20, 24]
    assert [r["step"] for r in records if r["split"] == "eval"] == [8, 16, 24]  # each epoch
    log = open(os.path.join(workdir, "train.log")).read()
    assert "step 12/24 (50%) | epoch 1.5 | loss" in log and "ex/s | ETA" in log
    assert "input stall" in log
    line = reference.summary_line
    assert "test accuracy" in line and "wall" in line and "train examples/s" in line


def test_eval_counts_every_example_once_and_matches_a_direct_computation(reference):
    state, data = reference.state, toy_data()
    logits, _ = state.model.apply(state.params, state.model_state, data.eval, train=False,
                                  rng=None)
    expected = float(np.mean(np.argmax(logits, -1) == data.eval["label"]))
    assert reference.eval["accuracy"] == pytest.approx(expected)  # 50 = 3 x 16 + 2 padded


def test_interrupt_saves_a_checkpoint_and_resume_is_bitwise_equal(tmp_path, reference):
    workdir = str(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(TinyNet(), Interrupting(toy_data(), 11, KeyboardInterrupt()), CONFIG, workdir)
    assert saved_steps(os.path.join(workdir, "checkpoints"))[-1] == 11
    resumed = fit(TinyNet(), toy_data(), CONFIG, workdir)
    assert resumed.summary["start_step"] == 11
    assert leaves_equal(resumed.state.params, reference.state.params)
    assert leaves_equal(resumed.state.opt_state, reference.state.opt_state)
    assert leaves_equal(resumed.state.model_state, reference.state.model_state)
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == sorted(set(train_steps))  # no step logged twice
    assert [r["step"] for r in records if r["split"] == "eval"] == [8, 16, 24]


def test_crash_resumes_mid_epoch_from_the_last_periodic_checkpoint(tmp_path, reference):
    workdir = str(tmp_path)
    with pytest.raises(RuntimeError, match="disk on fire"):
        fit(TinyNet(), Interrupting(toy_data(), 13, RuntimeError("disk on fire")), CONFIG,
            workdir)
    assert saved_steps(os.path.join(workdir, "checkpoints"))[-1] == 10
    assert RunDir(workdir, primary=False).position(10) == {"step": 10, "epoch": 1, "batch_in_epoch": 2,
                                        "process_count": 1}
    resumed = fit(TinyNet(), toy_data(), CONFIG, workdir)
    assert leaves_equal(resumed.state.params, reference.state.params)


def test_rerunning_a_finished_run_changes_nothing(reference):
    again = fit(TinyNet(), toy_data(), CONFIG, reference.summary["workdir"])
    assert again.summary["start_step"] == 24 == again.summary["step"]
    assert leaves_equal(again.state.params, reference.state.params)
    assert again.eval == reference.eval


class NaNAt:
    """Batch number `at` (1-based step) has a NaN image."""

    def __init__(self, at):
        self.data, self.at = toy_data(), at
        self.steps_per_epoch = self.data.steps_per_epoch
        self.eval_batches = self.data.eval_batches

    def train_epoch(self, epoch):
        for i, batch in enumerate(self.data.train_epoch(epoch)):
            if epoch * self.steps_per_epoch + i + 1 == self.at:
                batch = {**batch, "image": batch["image"].copy()}
                batch["image"][0, 0, 0, 0] = np.nan
            yield batch


def test_non_finite_loss_stops_within_a_step_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path)
    with pytest.raises(NonFiniteError, match=r"at step 12 .*last good checkpoint is step 10"):
        fit(TinyNet(), NaNAt(12), CONFIG, workdir)
    assert saved_steps(os.path.join(workdir, "checkpoints")) == [5, 10]
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert max(r["step"] for r in records) <= 12  # stopped at once, not at the end
    assert all(np.isfinite(r["loss"]) for r in records)


def test_nan_on_a_checkpoint_step_is_never_saved(tmp_path):
    workdir = str(tmp_path)
    with pytest.raises(NonFiniteError, match="at step 10 "):
        fit(TinyNet(), NaNAt(10), CONFIG, workdir)
    assert saved_steps(os.path.join(workdir, "checkpoints")) == [5]
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as manager:
        raw = manager.restore(5, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(raw["state"]))


# -- several steps per call (config.steps_per_call) ----------------------------------------

CONFIG_K = {**CONFIG, "steps_per_call": 3, "checkpoint_every_steps": 6}  # 8 batches/epoch


@pytest.fixture(scope="module")
def reference_k(tmp_path_factory):
    return fit(TinyNet(), toy_data(), CONFIG_K, str(tmp_path_factory.mktemp("ref_k")))


def test_steps_per_call_trains_like_one_step_per_call(reference, reference_k):
    assert int(reference_k.state.step) == 24 == reference_k.summary["step"]
    for a, b in zip(jax.tree.leaves(reference.state.params),
                    jax.tree.leaves(reference_k.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    workdir = reference_k.summary["workdir"]
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    # calls end at 3, 6, 8 (the epoch's end closes a call early), 11, 14, 16, ...: log_every 4
    # runs after the call that reached 4, 8, 12, ...; eval at each epoch's end
    assert [r["step"] for r in records if r["split"] == "train"] == [6, 8, 14, 16, 22, 24]
    assert [r["step"] for r in records if r["split"] == "eval"] == [8, 16, 24]
    assert saved_steps(os.path.join(workdir, "checkpoints")) == [14, 19, 24]


def test_steps_per_call_resumes_bitwise_after_an_interrupt(tmp_path, reference_k):
    workdir = str(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(TinyNet(), Interrupting(toy_data(), 13, KeyboardInterrupt()), CONFIG_K, workdir)
    assert saved_steps(os.path.join(workdir, "checkpoints"))[-1] == 11  # the end of the last call before the failing batch
    resumed = fit(TinyNet(), toy_data(), CONFIG_K, workdir)
    assert leaves_equal(resumed.state.params, reference_k.state.params)
    assert leaves_equal(resumed.state.opt_state, reference_k.state.opt_state)


def test_steps_per_call_names_the_bad_step_inside_a_call(tmp_path):
    workdir = str(tmp_path)
    with pytest.raises(NonFiniteError, match=r"at step 13 .*last good checkpoint is step 6"):
        fit(TinyNet(), NaNAt(13), CONFIG_K, workdir)  # the call of steps 12-14 checkpoints
    assert saved_steps(os.path.join(workdir, "checkpoints")) == [6]


def test_resuming_past_the_end_of_a_shorter_run_just_finishes(tmp_path):
    config = {**CONFIG, "num_epochs": 1}
    fit(TinyNet(), toy_data(), config, str(tmp_path))  # 8 steps
    shorter = ArrayData(toy_arrays(96, 0), toy_arrays(50, 1), batch_size=16, seed=0)
    again = fit(TinyNet(), shorter, config, str(tmp_path))  # 6 steps: already past them
    assert again.summary["start_step"] == 8 == again.summary["step"]


def test_a_changed_config_refuses_to_resume(tmp_path):
    fit(TinyNet(), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path))
    with pytest.raises(ConfigError, match=r"learning_rate: 0.01 -> 0.5.*new workdir"):
        fit(TinyNet(), toy_data(), {**CONFIG, "num_epochs": 1, "learning_rate": 0.5},
            str(tmp_path))


def test_data_of_unknown_epoch_length_reports_steps_not_epochs(tmp_path):
    batches = list(toy_data().train_epoch(0))[:5]
    result = fit(TinyNet(), lambda epoch: iter(batches), {**CONFIG, "num_steps": 10},
                 str(tmp_path))  # a function of the epoch: its length is not known ahead
    assert result.summary["step"] == 10 and result.summary["epochs"] is None
    assert "| 10 steps |" in result.summary_line and "epochs" not in result.summary_line


def test_fit_accepts_a_pure_function_pair_and_plain_lists(tmp_path):
    def init(rng, batch):
        return {"w": 0.01 * jax.random.normal(rng, (16, 3)), "b": jnp.zeros(3)}

    def apply(params, batch, *, train, rng):
        return batch["image"].reshape(-1, 16) @ params["w"] + params["b"]

    data = toy_data()
    train_list = list(data.train_epoch(0))
    result = fit((init, apply), train_list, {**CONFIG, "num_epochs": 4, "learning_rate": 0.1},
                 str(tmp_path), eval_data=list(data.eval_batches()), name="pair")
    assert result.summary["step"] == 32 and result.eval["accuracy"] > 0.8
    assert result.summary_line.startswith("pair: test accuracy")


def test_training_without_eval_data_reports_no_eval_not_zero_accuracy(tmp_path):
    data = ArrayData(toy_arrays(64, 0), batch_size=16)  # no eval arrays
    result = fit(TinyNet(), data, {**CONFIG, "num_epochs": 2}, str(tmp_path))
    assert result.eval is None and "no eval data" in result.summary_line
    with open(tmp_path / "metrics.jsonl") as f:
        splits = {json.loads(line)["split"] for line in f}
    assert splits == {"train"}


def _linear_pair(out=3):
    def init(rng, batch):
        return {"w": jnp.zeros((16, out))}

    def apply(params, batch, *, train, rng):
        return batch["image"].reshape(-1, 16) @ params["w"]
    return init, apply


def test_an_update_that_overflows_the_parameters_is_never_saved(tmp_path):
    data = toy_arrays(64, 0)
    data["image"] = data["image"] * 1e3  # finite loss and gradients, an inf update
    with pytest.raises(NonFiniteError, match="non-finite parameters after step 1 .*no "
                       "checkpoint had been saved"):
        fit(_linear_pair(), ArrayData(data, batch_size=16), {
            **CONFIG, "optimizer": "sgd", "learning_rate": 1e38, "weight_decay": 0.0,
            "schedule": "constant", "checkpoint_every_steps": 1}, str(tmp_path))
    assert saved_steps(os.path.join(str(tmp_path), "checkpoints")) == []


def test_a_label_that_is_no_class_stops_training_naming_labels(tmp_path):
    data = toy_arrays(32, 0)
    data["label"][5] = -1
    with pytest.raises(NonFiniteError, match=r"at step 1 .*the first batch's labels run -1..2, "
                       r"but the model scores 3 classes \(0..2\)"):
        fit(_linear_pair(), [data], {**CONFIG, "num_steps": 2, "warmup_steps": 0},
            str(tmp_path / "a"))
    data["label"][5] = 9  # a model with too few outputs for the data
    with pytest.raises(NonFiniteError, match="labels run 0..9, but the model scores 3 classes"):
        fit(_linear_pair(), [data], {**CONFIG, "num_steps": 2, "warmup_steps": 0},
            str(tmp_path / "b"))
    data["label"][5] = 1  # labels fine, the data itself NaN: the generic hint
    data["image"][0, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"label outside 0..classes-1 makes the loss NaN"):
        fit(_linear_pair(), [data], {**CONFIG, "num_steps": 2, "warmup_steps": 0},
            str(tmp_path / "c"))


def test_a_label_that_is_no_class_in_the_eval_data_is_named(tmp_path):
    ev = toy_arrays(16, 1)
    ev["label"][3] = 7
    result = fit(_linear_pair(), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path),
                 eval_data=[ev])
    assert np.isnan(result.eval["loss"])
    assert "the eval loss is not finite: check the eval data (a label outside" in \
        (tmp_path / "train.log").read_text()


def test_another_models_workdir_is_refused_in_one_line(tmp_path):
    fit(_linear_pair(3), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path))
    with pytest.raises(ConfigError, match=r"step 8 in .* cannot be restored .*another model.s "
                       r"run, pass a new workdir"):
        fit(_linear_pair(5), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path))


@pytest.mark.parametrize("damage", ["overwrite", "truncate"])
def test_a_damaged_checkpoint_is_named_and_the_one_before_it_still_resumes(tmp_path, damage):
    import shutil
    workdir = str(tmp_path)
    fit(TinyNet(), toy_data(), CONFIG, workdir)
    newest = os.path.join(workdir, "checkpoints", "24")
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(newest, "state"))
             for f in fs]
    biggest = max(files, key=os.path.getsize)
    with open(biggest, "r+b") as f:
        if damage == "overwrite":  # the array data garbled, the file's size kept
            f.write(np.random.default_rng(0).bytes(os.path.getsize(biggest)))
        else:  # cut short (tensorstore then raises a plain Exception)
            f.truncate(10)
    with pytest.raises(ConfigError, match=r"step 24 .*cannot be restored.*if it is damaged, "
                       r"delete .*checkpoints/24 to resume from step 20"):
        fit(TinyNet(), toy_data(), CONFIG, workdir)
    shutil.rmtree(newest)
    assert fit(TinyNet(), toy_data(), CONFIG, workdir).summary["step"] == 24


def test_a_damaged_config_json_is_named_with_the_ways_on(tmp_path):
    fit(TinyNet(), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path))
    (tmp_path / "config.json").write_text('{"batch_si')
    with pytest.raises(ConfigError, match=r"config.json is damaged .*delete it to resume"):
        fit(TinyNet(), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path))
    os.remove(tmp_path / "config.json")
    assert fit(TinyNet(), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path)).summary[
        "start_step"] == 8


def test_a_checkpoint_of_another_number_of_processes_is_refused(tmp_path):
    from jaxnets.train.config import resolve
    config = resolve({**CONFIG, "num_epochs": 1})
    fit(TinyNet(), toy_data(), config, str(tmp_path))
    run = RunDir(str(tmp_path), primary=False)
    assert run.position(8) == {"step": 8, "epoch": 0, "batch_in_epoch": 8, "process_count": 1}
    with pytest.raises(ConfigError, match=r"step 8 in .* was written by 1 process\(es\), this "
                       r"run has 2: resume it with 1 .*--num_processes"):
        run.resume_step(config, process_count=2)
    assert RunDir(str(tmp_path), primary=False).resume_step(config, process_count=1) == 8


def test_a_workdir_that_cannot_be_written_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"/proc/self: cannot write in it .*writable"):
        with RunDir("/proc/self", primary=True).claimed():
            pass
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match=r"cannot write in it \(a file is in the way\)"):
        with RunDir(str(tmp_path / "afile"), primary=True).claimed():
            pass


def test_a_workdir_in_use_by_another_run_is_refused(tmp_path):
    import fcntl
    with open(tmp_path / ".lock", "w") as held:  # as a run in another process holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        with pytest.raises(ConfigError, match=r"in use by another run \(pid 4242\)"):
            fit(TinyNet(), toy_data(), CONFIG, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")  # nothing of the first run touched
    assert fit(TinyNet(), toy_data(), {**CONFIG, "num_epochs": 1}, str(tmp_path)).summary[
        "step"] == 8  # free again


def test_one_batch_dict_as_data_is_refused_naming_the_fix(tmp_path):
    with pytest.raises(TypeError, match="one dict of arrays.*list of batch dicts"):
        fit(TinyNet(), toy_arrays(16, 0), CONFIG, str(tmp_path))
    with pytest.raises(TypeError, match="eval data is one dict"):
        fit(TinyNet(), toy_data(), CONFIG, str(tmp_path), eval_data=toy_arrays(16, 1))


def test_fit_refuses_a_dtype_the_model_does_not_compute_in(tmp_path):
    from jaxnets.models import MODELS
    data = ArrayData({"image": np.zeros((16, 32, 32, 1), np.float32),
                      "label": np.zeros(16, np.int32)}, batch_size=8)
    lenet = MODELS["lenet"](num_classes=3)  # float32
    with pytest.raises(ConfigError, match="dtype=bfloat16, but the model computes in float32"):
        fit(lenet, data, {**CONFIG, "dtype": "bfloat16"}, str(tmp_path / "a"))
    lenet16 = MODELS["lenet"](num_classes=3, dtype=jnp.bfloat16)  # built to match: trains
    config16 = {**CONFIG, "dtype": "bfloat16", "num_epochs": 1, "warmup_steps": 0}
    assert fit(lenet16, data, config16, str(tmp_path / "b")).summary["step"] == 2


def test_array_data_keeps_the_callers_mask(tmp_path):
    train, ev = toy_arrays(64, 0), toy_arrays(20, 1)
    train["mask"] = (np.arange(64) % 2).astype(np.float32)
    ev["mask"] = (np.arange(20) < 10).astype(np.float32)
    data = ArrayData(train, ev, batch_size=16, eval_batch_size=8)
    assert sum(b["mask"].sum() for b in data.train_epoch(0)) == 32
    masks = [b["mask"] for b in data.eval_batches()]
    assert [m.tolist() for m in masks][-1] == [0.0] * 8  # rows 16-19 (masked), padding
    result = fit(TinyNet(), data, {**CONFIG, "num_epochs": 1}, str(tmp_path))
    assert result.eval["examples"] == 10


def test_unknown_config_field_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown config field.*learnin_rate"):
        fit(TinyNet(), toy_data(), {"learnin_rate": 0.1}, str(tmp_path))


def test_the_engine_does_not_import_tensorflow():
    code = ("import sys, jaxnets.train as t; t.fit; t.ArrayData; import jaxnets.train.loop;"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# README's own-model example as a fresh process's script: fit(..., config, argv[1]) -> r
_TINY_FIT_SCRIPT = (
    "import sys, jax, numpy as np\n"
    "from jaxnets.train import ArrayData, fit\n"
    "def init(rng, batch): return {{'w': jax.numpy.zeros((4, 2))}}\n"
    "def apply(params, batch, *, train, rng): return batch['image'] @ params['w']\n"
    "x = np.ones((8, 4), np.float32); y = np.zeros(8, np.int32)\n"
    "r = fit((init, apply), ArrayData({{'image': x, 'label': y}}, batch_size=4),\n"
    "        {config}, sys.argv[1])\n")


def test_a_script_calling_fit_gets_the_clis_host_tuning(tmp_path):
    """README's own-model example in a fresh process: `fit` tunes the host itself (freed
    memory kept, programs on the calling thread), as `run.py` does before JAX starts."""
    code = (_TINY_FIT_SCRIPT.format(config="{'num_steps': 2, 'progress': False}")
            + "from jaxnets import runtime_options\n"
            "print(runtime_options.tune_host())\n"
            "print(jax.config.values['jax_cpu_enable_async_dispatch'])\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, timeout=120).stdout.splitlines()
    assert out[-2].startswith("malloc: freed blocks") and "calling thread" in out[-2]
    assert out[-1] == "False"
    env = {**os.environ, "JAXNETS_NO_HOST_TUNING": "1"}  # the way out: left as it is
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], capture_output=True,
                         text=True, check=True, timeout=120, env=env).stdout.splitlines()
    assert "left as it is" in out[-2] and out[-1] == "True"


def test_a_script_calling_fit_with_host_devices_trains_on_the_split_cpu(tmp_path):
    """`fit` splits the CPU as the config asks when JAX has not started yet (the CLI's
    --host_devices=N, tested in test_bad_input by a batch that does not split over 3)."""
    config = "{'num_steps': 2, 'progress': False, 'host_devices': 2}"
    code = (_TINY_FIT_SCRIPT.format(config=config)
            + "print(len(jax.devices()), r.summary['parallel'])\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, timeout=120).stdout.splitlines()
    assert out[-1] == "2 pmap on 2 cpu devices"


def test_host_devices_after_jax_started_is_an_error_naming_the_fix():
    have = len(jax.devices("cpu"))  # this test process started JAX long ago
    assert runtime_options.split_host(1) == "CPU devices as JAX makes them"
    if have > 1:  # the count JAX has: nothing to do
        assert runtime_options.split_host(have) == f"CPU as {have} devices"
    with pytest.raises(ConfigError, match=rf"host_devices={have + 1}, but JAX started with "
                                          rf"{have} CPU device.*JAX_NUM_CPU_DEVICES={have + 1}"):
        runtime_options.split_host(have + 1)


def test_tensorboard_events_are_written_without_importing_torch(tmp_path):
    code = ("import glob, importlib.util, sys\n"
            "from jaxnets.train.reporting import Reporter\n"
            "from jaxnets.train.rundir import RunDir\n"
            "r = Reporter(RunDir(sys.argv[1], primary=True), 'run', progress=False)\n"
            "r.record(1, 'train', {'loss': 0.5}); r.tb.flush()\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert glob.glob(sys.argv[1] + '/tensorboard/events.out.tfevents.*')\n"
            "if importlib.util.find_spec('torch'):  # installed: still importable afterwards\n"
            "    import torch; torch.zeros(1)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)


def test_tensorboard_events_hold_the_scalars_and_a_resume_purges_after_its_checkpoint(
        tmp_path):
    tf = pytest.importorskip("tensorflow")
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    run = RunDir(str(tmp_path), primary=True)
    first = Reporter(run, "run", progress=False)
    first.record(4, "train", {"loss": 0.5, "epoch": 1.0})
    first.record(8, "eval", {"accuracy": 0.75})
    first.close()
    resumed = Reporter(run, "run", start_step=4, progress=False)  # in the same second
    resumed.record(8, "train", {"loss": 0.25})
    resumed.close()
    files = sorted(glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*")))
    assert len(files) == 2  # the resume made its own file
    scalars, starts = [], []
    for path in files:
        for raw in tf.data.TFRecordDataset(path):
            event = Event.FromString(raw.numpy())
            scalars += [(event.step, v.tag, round(v.simple_value, 4)) for v in event.summary.value]
            if event.session_log.status == SessionLog.START:
                starts.append(event.step)
    assert scalars == [(4, "train/loss", 0.5), (8, "eval/accuracy", 0.75),
                       (8, "train/loss", 0.25)]  # no epoch scalar: it is the x axis
    assert starts == [5]  # TensorBoard hides the first run's events from step 5 on
