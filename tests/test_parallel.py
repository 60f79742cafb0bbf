"""Data parallelism (jaxnets/train/placement.py, jaxnets/distributed.py): pmap and sharding on fake CPU devices, and
several processes on localhost, against one-device training on the same global batches.

Fake devices exist only in subprocesses (XLA_FLAGS is read when JAX starts), so the rest of
the suite keeps its one CPU device. This file is also the subprocesses' program:
`python tests/test_parallel.py <scenario> <out.json> [args]`.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxnets import distributed
from jaxnets.data.contract import pad_to_multiple
from jaxnets.train import placement
from jaxnets.train import ArrayData, ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = {"num_epochs": 2, "progress": False, "learning_rate": 0.05, "optimizer": "adam",
          "log_every_steps": 3, "checkpoint_every_steps": 5}
TOLERANCE = 1e-5


class Net(nn.Module):
    """Deterministic (no dropout, no BatchNorm): every strategy must give the same numbers."""

    dropout: float = 0.0

    @nn.compact
    def __call__(self, image, *, train=False):
        x = nn.relu(nn.Dense(16)(image.reshape((image.shape[0], -1))))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(3)(x)


def toy_data(process_index=0, process_count=1, eval_batch_size=14):
    """96 train examples in batches of 16; 50 eval examples in batches of 14 (the last one
    has 8 real rows). Process p of P gets rows p*16/P.. of every global batch."""
    def arrays(n, seed):
        rng = np.random.default_rng(seed)
        label = rng.integers(0, 3, n).astype(np.int32)
        image = (rng.normal(size=(n, 4, 4, 1)) + label[:, None, None, None]).astype(np.float32)
        return {"image": image, "label": label}
    data = ArrayData(arrays(96, 0), arrays(50, 1), batch_size=16,
                     eval_batch_size=eval_batch_size)
    return data if process_count == 1 else ProcessShard(data, process_index, process_count)


class ProcessShard:
    """Process p's rows of each batch of `data`: together, the processes see `data`'s batches."""

    def __init__(self, data, index, count):
        self.data, self.index, self.count = data, index, count
        self.steps_per_epoch = data.steps_per_epoch

    def _mine(self, batch):
        rows = len(batch["label"]) // self.count
        return {k: v[self.index * rows:(self.index + 1) * rows] for k, v in batch.items()}

    def train_epoch(self, epoch, start_step=0):
        return map(self._mine, self.data.train_epoch(epoch, start_step))

    def eval_batches(self):
        return map(self._mine, self.data.eval_batches())


class ShortLastBatch:
    """`data`'s first epoch with its last batch cut to 6 rows (as a list of batches may end)."""

    def __init__(self, data):
        self.batches = list(data.train_epoch(0))
        self.batches[-1] = {k: v[:6] for k, v in self.batches[-1].items()}
        self.steps_per_epoch = len(self.batches)
        self.eval_batches = data.eval_batches

    def train_epoch(self, epoch, start_step=0):
        return iter(self.batches[start_step:])


def flat_params(params):
    import jax
    return [np.asarray(x).tolist() for x in jax.tree.leaves(params)]


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def reference(config, data):
    """One-device training with no loop and no strategy: jit(train_step) on each batch."""
    import jax
    from jaxnets.train.config import resolve as resolve_config
    from jaxnets.train.model_api import as_model
    from jaxnets.train.optim import make_optimizer
    from jaxnets.train.state import create_state
    from jaxnets.train.steps import eval_step, train_step
    config = resolve_config(config)
    steps = config.num_epochs * data.steps_per_epoch
    tx, _ = make_optimizer(config, steps)
    batches = [b for e in range(config.num_epochs) for b in data.train_epoch(e)]
    state = create_state(as_model(Net()), tx, batches[0], config.seed)
    step = jax.jit(train_step)
    for batch in batches:
        state = step(state, batch)[0]
    sums = [jax.jit(eval_step)(state, b) for b in data.eval_batches()]
    correct, count = (sum(float(getattr(m, k)) for m in sums) for k in ("correct", "count"))
    return flat_params(state.params), {"accuracy": correct / count, "examples": int(count)}


# -- the subprocesses' scenarios ----------------------------------------------------------


def scenario_devices(out):
    """On 4 fake devices: every strategy and device count, a batch that does not split, and
    dropout under pmap."""
    import tempfile

    from jaxnets.train import fit
    data = toy_data()
    ref_params, ref_eval = reference(CONFIG, data)
    runs = {}
    placements = [(strategy, n, 1) for strategy in placement.STRATEGIES for n in (1, 2, 4)]
    several = [("sharding", 4, 4), ("pmap", 4, 4), ("auto", 4, 4)]
    for strategy, n, k in placements + several:  # 6 batches an epoch: k=4 -> 4 + 2 singles
        config = {**CONFIG, "parallel": strategy, "num_devices": n, "steps_per_call": k}
        result = fit(Net(), data, config, tempfile.mkdtemp())
        runs[f"{strategy}/{n}" + (f"/{k} steps per call" if k > 1 else "")] = {
            "diff": max_diff(flat_params(result.state.params), ref_params),
            "eval": result.eval, "parallel": result.summary["parallel"],
            "train_log": train_records(result.summary["workdir"])}
    short = ShortLastBatch(data)  # its last batch has 6 rows: padded to 8 on 4 devices
    short_params, _ = reference({**CONFIG, "num_epochs": 1}, short)
    for strategy in ("pmap", "sharding"):
        result = fit(Net(), short, {**CONFIG, "num_epochs": 1, "parallel": strategy,
                                    "num_devices": 4}, tempfile.mkdtemp())
        runs[f"{strategy}/4 short last batch"] = {
            "diff": max_diff(flat_params(result.state.params), short_params),
            "eval": result.eval, "parallel": result.summary["parallel"]}
    try:
        fit(Net(), ArrayData(data.train, None, batch_size=6), {**CONFIG, "num_devices": 4},
            tempfile.mkdtemp())
        split_error = None
    except ConfigError as e:
        split_error = str(e)
    json.dump({"reference_eval": ref_eval, "runs": runs, "split_error": split_error,
               "dropout": dropout_under_pmap(),
               "resumed": resumed_under_another_strategy(ref_params),
               "nan": nan_inside_a_pmap_call(), "layout": pmap_stacked_layout()},
              open(out, "w"))


def train_records(workdir):
    """(step, loss, examples/s > 0) of each training record in the run's metrics.jsonl."""
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [(r["step"], r["loss"], r["examples_per_sec"] > 0)
            for r in records if r["split"] == "train"]


class StopAt:
    """`data`, with a Ctrl-C (KeyboardInterrupt) when batch number `at` (over epochs) is due."""

    def __init__(self, data, at):
        self.data, self.at, self.served = data, at, 0
        self.steps_per_epoch, self.eval_batches = data.steps_per_epoch, data.eval_batches

    def train_epoch(self, epoch, start_step=0):
        for batch in self.data.train_epoch(epoch, start_step):
            if self.served == self.at:
                raise KeyboardInterrupt
            self.served += 1
            yield batch


def resumed_under_another_strategy(ref_params):
    """A run stopped by a Ctrl-C after its first call (steps 1-4) and resumed under another
    placement (steps 5, 6 one by one at the epoch's end, then 7-10 in one call): pmap with
    4 steps per call -> one device, and sharding with 4 -> pmap on 2 devices with 3 (then
    5, 6 | 7-9 | 10-12). Each against one uninterrupted device (`ref_params`)."""
    import tempfile

    from jaxnets.train import fit
    pmap4 = {"parallel": "pmap", "num_devices": 4, "steps_per_call": 4}
    results = {}
    for first, then in [(pmap4, {"parallel": "sharding", "num_devices": 1}),
                        ({**pmap4, "parallel": "sharding"}, {**pmap4, "num_devices": 2,
                                                             "steps_per_call": 3})]:
        workdir = tempfile.mkdtemp()
        try:
            fit(Net(), StopAt(toy_data(), 5), {**CONFIG, **first}, workdir)
        except KeyboardInterrupt:  # batch 5 was due: the call of 1-4 ran, 5 was not stacked
            pass
        result = fit(Net(), toy_data(), {**CONFIG, **then}, workdir)
        results[f"{first['parallel']} -> {result.summary['parallel']}"] = {
            "diff": max_diff(flat_params(result.state.params), ref_params),
            "start_step": result.summary["start_step"]}
    return results


class NaNAt:
    """toy_data with a NaN image in the batch of (1-based) step `at`."""

    def __init__(self, at):
        self.data, self.at = toy_data(), at
        self.steps_per_epoch, self.eval_batches = self.data.steps_per_epoch, None

    def train_epoch(self, epoch, start_step=0):
        for i, batch in enumerate(self.data.train_epoch(epoch, start_step), start_step):
            if epoch * self.steps_per_epoch + i + 1 == self.at:
                batch = {**batch, "image": batch["image"].copy()}
                batch["image"][0, 0, 0, 0] = np.nan
            yield batch


def nan_inside_a_pmap_call():
    """The NaN guard's message when step 9 of the call of steps 7-10 (pmap, 4 per call) is NaN."""
    import tempfile

    from jaxnets.train import NonFiniteError, fit
    try:
        fit(Net(), NaNAt(9), {**CONFIG, "parallel": "pmap", "num_devices": 4,
                              "steps_per_call": 4}, tempfile.mkdtemp())
    except NonFiniteError as e:
        return str(e)
    return None


def pmap_stacked_layout():
    """A group of 3 batches of 16 rows under pmap on 4 devices: each device's array, the
    examples counted."""
    strategy = placement.make_strategy("pmap", 4, 3)
    batches = [{"label": np.arange(16) + 100 * i} for i in range(3)]
    [group] = list(placement.stack_batches(batches, 3))
    placed = strategy.put_batch(group.batch, stacked=True)["label"]
    return {"shape": list(placed.shape), "examples": strategy.examples({"label": placed}, True),
            "device_1": next(np.asarray(shard.data[0]).tolist()
                             for shard in placed.addressable_shards
                             if shard.device == strategy.local_devices[1])}


def dropout_under_pmap():
    """Dropout under pmap: how far apart (a) pmap on 4 devices, each given the same 4 rows,
    and pmap on 1 device with those rows are ("per device"), and (b) the 4-device run with
    3 steps per call and with 1 ("steps per call").

    (a) The same dropout key on every device would make the 4 gradients equal and the two
    runs agree; keys folded with the device index make them differ. (b) Each step's key is
    the same in a k-step call as in its own call: the parameters agree."""
    import tempfile

    from jaxnets.train import fit
    rows = toy_data().train
    slice4 = {k: v[:4] for k, v in rows.items()}
    tiled = {k: np.concatenate([v] * 4) for k, v in slice4.items()}  # device i: rows 4i..4i+3
    config = {**CONFIG, "num_epochs": 0, "num_steps": 3, "parallel": "pmap"}
    one = fit(Net(dropout=0.5), [slice4], {**config, "num_devices": 1}, tempfile.mkdtemp())
    four = [flat_params(fit(Net(dropout=0.5), [tiled] * 3,
                            {**config, "num_devices": 4, "steps_per_call": k},
                            tempfile.mkdtemp()).state.params) for k in (1, 3)]
    return {"per device": max_diff(flat_params(one.state.params), four[0]),
            "steps per call": max_diff(*four)}


def scenario_process(out, port, process_id, workdir):
    """One of 2 processes (2 fake devices each): pmap, sharding, then resuming the pmap run."""
    from jaxnets.train import fit
    distributed.initialize_distributed(f"127.0.0.1:{port}", 2, int(process_id), timeout_s=60)
    data = toy_data(int(process_id), 2)
    result = {}
    for name, strategy in (("pmap", "pmap"), ("sharding", "sharding"), ("again", "pmap")):
        run = fit(Net(), data, {**CONFIG, "parallel": strategy},
                  os.path.join(workdir, "sharding" if name == "sharding" else "pmap"))
        result[name] = {"params": flat_params(run.state.params), "eval": run.eval,
                        "start_step": run.summary["start_step"]}
    json.dump(result, open(out, "w"))


def scenario_unreachable(out, port):
    distributed.initialize_distributed(f"127.0.0.1:{port}", 2, 1, timeout_s=3)
    json.dump({"connected": True}, open(out, "w"))  # never reached


SCENARIOS = {"devices": scenario_devices, "process": scenario_process,
             "unreachable": scenario_unreachable}


def start(scenario, out, *args, devices=1):
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, __file__, scenario, str(out), *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=240):
    """(exit status, output) of a subprocess, killed after `timeout` seconds."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"subprocess still running after {timeout} s:\n{output[-3000:]}")
    return proc.returncode, output


# -- in this process: no devices needed ----------------------------------------------------


def test_batch_that_does_not_split_names_both_numbers_and_a_fix():
    placement.check_batch_size(16, 4)
    with pytest.raises(ConfigError, match=r"batch size 10 does not split evenly over 4 devices "
                                          r"\(10/4 = 2.5 per device\).*e.g. 8 or 12"):
        placement.check_batch_size(10, 4)


def test_eval_padding_masks_the_new_rows_and_keeps_the_old_mask():
    batch = {"image": np.ones((5, 2), np.float32), "label": np.arange(5)}
    padded = pad_to_multiple(batch, 4)
    assert padded["image"].shape == (8, 2) and padded["mask"].tolist() == [1] * 5 + [0] * 3
    masked = pad_to_multiple({**batch, "mask": np.array([1, 1, 1, 0, 0], np.float32)}, 2)
    assert masked["mask"].tolist() == [1, 1, 1, 0, 0, 0]
    assert pad_to_multiple(batch, 5) is batch


def test_multi_process_flags_go_together_and_a_single_process_needs_none(monkeypatch):
    for var in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize_distributed() is False
    with pytest.raises(ConfigError, match="missing --coordinator_address, --process_id"):
        distributed.initialize_distributed(num_processes=2)
    with pytest.raises(ConfigError, match=r"--process_id=2 must be in 0..1"):
        distributed.initialize_distributed("127.0.0.1:1", 2, 2)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert distributed.detected_cluster() == "SLURM"


def test_prefetch_raises_a_source_error_only_after_the_batches_before_it():
    def source():
        yield {"x": np.zeros(2)}
        yield {"x": np.ones(2)}
        raise KeyboardInterrupt

    batches = placement.prefetch(source(), lambda b: b, size=3)
    assert next(batches)["x"][0] == 0 and next(batches)["x"][0] == 1
    with pytest.raises(KeyboardInterrupt):
        next(batches)


def test_one_cpu_device_takes_numpy_batches_straight_into_the_step():
    strategy = placement.make_strategy("sharding", 1)  # this process has one CPU device
    batch = {"image": np.ones((4, 2), np.float32), "label": np.arange(4)}
    placed = strategy.put_batch(batch)
    assert strategy.host_is_device and all(isinstance(v, np.ndarray) for v in placed.values())
    state = {"w": jax.numpy.ones(2)}
    step = jax.jit(lambda s, b: (b["image"] @ s["w"]).sum(),
                   in_shardings=(strategy.replicated, strategy.split))
    assert float(step(state, placed)) == 8.0


def test_launcher_stops_every_process_when_one_fails_or_time_runs_out(capsys):
    from jaxnets.experiments import launch

    def procs(*codes):
        return [subprocess.Popen([sys.executable, "-c", code]) for code in codes]
    sleeper = "import time; time.sleep(60)"
    started = time.monotonic()
    running = procs(sleeper, "raise SystemExit(3)")
    assert launch.wait_all(running, timeout=60) == 3 and running[0].poll() is not None
    assert "process 1 exited with status 3; the other processes were stopped" in \
        capsys.readouterr().err
    running = procs(sleeper, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert launch.wait_all(running, timeout=60) == 1
    assert "process 1 was killed by signal 9" in capsys.readouterr().err
    assert launch.wait_all(procs(sleeper), timeout=0.5) == launch.TIMED_OUT
    assert launch.wait_all(procs("pass", "pass"), timeout=60) == 0
    assert time.monotonic() - started < 30


def test_launcher_refuses_a_port_in_use():
    import socket
    from jaxnets.experiments import launch
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"--port={port}: .*give another port"):
            launch.check_port(port)
    assert launch.check_port(port) == port  # free again


# -- fake devices, in a subprocess -----------------------------------------------------------


@pytest.fixture(scope="module")
def on_four_devices(tmp_path_factory):
    out = tmp_path_factory.mktemp("devices") / "out.json"
    code, output = finish(start("devices", out, devices=4))
    assert code == 0, output[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("run", [f"{s}/{n}" for s in ("pmap", "sharding") for n in (1, 2, 4)]
                         + ["sharding/4/4 steps per call", "pmap/4/4 steps per call",
                            "pmap/4 short last batch",
                            "sharding/4 short last batch"])
def test_training_on_1_2_4_devices_matches_one_device(on_four_devices, run):
    result = on_four_devices["runs"][run]
    assert result["diff"] <= TOLERANCE, result
    assert result["parallel"].startswith(run.split("/")[0])


@pytest.mark.slow
def test_pmap_with_steps_per_call_logs_what_sharding_logs(on_four_devices):
    runs = on_four_devices["runs"]
    pmap, sharding = (runs[f"{s}/4/4 steps per call"]["train_log"] for s in ("pmap", "sharding"))
    assert [r[0] for r in pmap] == [r[0] for r in sharding] == [4, 6, 10, 12]  # log every 3
    # the StallMeter counted examples (not in the first call: it compiled)
    assert [r[2] for r in pmap] == [r[2] for r in sharding] == [False, True, True, True]
    np.testing.assert_allclose([r[1] for r in pmap], [r[1] for r in sharding], atol=TOLERANCE)


@pytest.mark.slow
def test_pmap_with_steps_per_call_resumes_under_another_strategy_and_back(on_four_devices):
    resumed = on_four_devices["resumed"]
    assert sorted(resumed) == ["pmap -> sharding on 1 cpu device",
                               "sharding -> pmap on 2 cpu devices"]
    for run, result in resumed.items():
        assert result["start_step"] == 4 and result["diff"] <= TOLERANCE, (run, result)


@pytest.mark.slow
def test_pmap_with_steps_per_call_names_the_non_finite_step_inside_a_call(on_four_devices):
    assert re.search(r"at step 9 .*last good checkpoint is step 5", on_four_devices["nan"]), \
        on_four_devices["nan"]


@pytest.mark.slow
def test_pmap_stacks_each_devices_slice_of_every_step_and_keeps_dropout_keys(on_four_devices):
    layout = on_four_devices["layout"]  # device 1: rows 4..7 of each of the 3 batches
    assert layout["shape"] == [4, 3, 4] and layout["examples"] == 48
    assert layout["device_1"] == [[4, 5, 6, 7], [104, 105, 106, 107], [204, 205, 206, 207]]
    assert on_four_devices["dropout"]["steps per call"] <= TOLERANCE  # 3 per call = 1 per call


@pytest.mark.slow
def test_eval_counts_every_example_once_with_an_uneven_last_batch(on_four_devices):
    expected = on_four_devices["reference_eval"]  # 50 = 3 x 14 + 8; 14 rows pad to 16 on 4
    assert expected["examples"] == 50
    for run, result in on_four_devices["runs"].items():
        assert result["eval"]["examples"] == 50, run
        if "short" not in run:  # those trained on other batches
            assert result["eval"]["accuracy"] == pytest.approx(expected["accuracy"]), run


@pytest.mark.slow
def test_unsplittable_batches_are_refused_auto_is_pmap_and_dropout_differs_per_device(
        on_four_devices):
    assert "batch size 6 does not split evenly over 4 devices" in on_four_devices["split_error"]
    auto = on_four_devices["runs"]["auto/4/4 steps per call"]  # several devices: pmap, any k
    assert auto["parallel"].startswith("pmap") and auto["diff"] <= TOLERANCE
    assert on_four_devices["dropout"]["per device"] > 1e-4


# -- several processes on localhost ------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_train_to_the_parameters_of_one(tmp_path):
    workdir, port = tmp_path / "run", _free_port()
    procs = [start("process", tmp_path / f"p{i}.json", port, i, workdir, devices=2)
             for i in range(2)]
    outputs = [finish(p) for p in procs]
    for code, output in outputs:
        assert code == 0, output[-3000:]
    ref_params, ref_eval = reference(CONFIG, toy_data())
    results = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2)]
    for result in results:
        for name in ("pmap", "sharding", "again"):
            assert max_diff(result[name]["params"], ref_params) <= TOLERANCE, name
            assert result[name]["eval"]["examples"] == 50
            assert result[name]["eval"]["accuracy"] == pytest.approx(ref_eval["accuracy"])
        assert result["again"]["start_step"] == 12  # resumed from the shared checkpoint
    for run in ("pmap", "sharding"):  # logs and checkpoints written once, by process 0
        log = (workdir / run / "train.log").read_text()
        assert log.count("step 6/12 ") == 1 and log.count("eval at step 12 ") == 1 + (
            run == "pmap"), log
        assert sorted(os.listdir(workdir / run / "checkpoints")) == ["10", "12", "5"]


@pytest.mark.slow
def test_a_process_that_cannot_reach_its_peers_fails_with_a_clear_message(tmp_path):
    started = time.monotonic()
    code, output = finish(start("unreachable", tmp_path / "out.json", _free_port()), timeout=120)
    assert code == 1 and time.monotonic() - started < 60, output[-3000:]
    assert ("process 1 of 2 could not reach its peers through 127.0.0.1:" in output
            and "within 3 s" in output), output[-3000:]
    assert not (tmp_path / "out.json").exists()


@pytest.mark.slow
def test_launch_runs_a_preset_in_two_processes_each_on_its_own_shard(tmp_path):
    import data_fixtures  # the data tests' offline fixtures: mnist5k's test split has 30
    data_dir = data_fixtures.prepared_data_dir()
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "jaxnets.experiments.launch", "--num_processes=2",
               "--devices_per_process=2", "--timeout=240", "--", "--model=lenet_mnist",
               "--config.smoke=True", "--config.eval_max_batches=0", "--parallel=sharding",
               f"--config.data_dir={data_dir}", f"--workdir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [line for line in result.stdout.splitlines()
                 if line.startswith("lenet_mnist: test accuracy")]
    assert len(summaries) == 1 and "30 examples" in summaries[0], result.stdout
    assert "batch 16 (4 per device; sharding on 4 cpu devices in 2 processes)" in result.stdout
    assert (tmp_path / "checkpoints" / "8").is_dir()


@pytest.mark.slow
def test_scaling_benchmark_times_pmap_sharding_and_one_device_on_fake_devices():
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("XLA_FLAGS", None)  # the benchmark makes its own devices
    result = subprocess.run([sys.executable, "-m", "jaxnets.benchmark.scaling", "--devices=2",
                             "--models=lenet", "--reps=1", "--seconds=0.01"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("lenet: sharding on 1 cpu device, sharding on 2 cpu devices, pmap on 2 cpu "
            "devices;") in result.stdout, result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("| LeNet-5"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["25", "32"] and all(c.endswith("x") for c in cells[-2:]), row


def _free_port():
    from jaxnets.experiments.launch import free_port
    return free_port()


if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])


def test_a_collective_broken_by_a_dead_process_is_one_line_other_errors_keep_theirs(
        monkeypatch):
    import jax
    from jaxnets import distributed
    gloo = jax.errors.JaxRuntimeError("UNKNOWN: Gloo all-reduce failed: [pair.cc:547] "
                                      "Connection closed by peer [127.0.0.1]:46729")
    assert distributed.lost_peer(gloo) is None  # one process: no peer to lose
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    assert "another process of this run stopped" in distributed.lost_peer(gloo)
    assert distributed.lost_peer(jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of "
                                                            "memory")) is None
