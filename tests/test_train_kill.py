"""A training process killed with SIGKILL resumes and ends bitwise equal to an unkilled run."""

import importlib.util
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

SCRIPT = textwrap.dedent('''
    """Trains a tiny net; argv: workdir, seconds to sleep per batch. Saves params.npz."""
    import sys, time
    import flax.linen as nn
    import jax
    import numpy as np
    from jaxnets.train import ArrayData, fit

    class Net(nn.Module):
        @nn.compact
        def __call__(self, image, *, train):
            x = nn.relu(nn.Dense(16)(image.reshape((image.shape[0], -1))))
            return nn.Dense(3)(nn.Dropout(0.3, deterministic=not train)(x))

    def arrays(n, seed):
        rng = np.random.default_rng(seed)
        label = rng.integers(0, 3, n).astype(np.int32)
        return {"image": (rng.normal(size=(n, 4, 4, 1)) + label[:, None, None, None]
                          ).astype(np.float32), "label": label}

    class Slow(ArrayData):
        sleep = 0.0
        def train_epoch(self, epoch, start_step=0):
            for batch in super().train_epoch(epoch, start_step):
                time.sleep(self.sleep)
                yield batch

    def run(workdir, sleep=0.0):
        data = Slow(arrays(128, 0), arrays(40, 1), batch_size=16)
        data.sleep = sleep
        config = {"num_epochs": 6, "checkpoint_every_steps": 4, "log_every_steps": 4,
                  "progress": False, "optimizer": "momentum", "learning_rate": 0.05,
                  "schedule": "cosine"}
        return fit(Net(), data, config, workdir)

    if __name__ == "__main__":
        result = run(sys.argv[1], float(sys.argv[2]))
        leaves = jax.tree_util.tree_flatten_with_path(result.state.params)[0]
        np.savez(sys.argv[1] + "/params.npz",
                 **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves})
''')


def _committed_steps(checkpoints: str) -> list[int]:
    if not os.path.isdir(checkpoints):
        return []
    return [int(d) for d in os.listdir(checkpoints)
            if d.isdigit() and os.path.exists(os.path.join(checkpoints, d, "commit_success.txt"))]


class Run:
    """The reference run in this process, and the same script started in a subprocess
    (0.1 s or `sleep` of data wait per batch) once it has committed checkpoint 8."""

    def __init__(self, tmp_path, name: str, sleep: float):
        script = tmp_path / "killrun.py"
        script.write_text(SCRIPT)
        spec = importlib.util.spec_from_file_location("killrun", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.reference = module.run(str(tmp_path / "reference"))
        self.workdir = tmp_path / name
        self.command = [sys.executable, str(script), str(self.workdir)]
        self.env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep +
                    os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(self.command + [str(sleep)], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not any(s >= 8 for s in _committed_steps(str(self.workdir / "checkpoints"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(self.proc.stderr.read().decode()[-2000:] or "no "
                                     "checkpoint within 120 s")
            time.sleep(0.05)

    def finish_and_compare(self) -> None:
        """Runs the same command again (it resumes) and checks every parameter bitwise."""
        finished = subprocess.run(self.command + ["0"], env=self.env, capture_output=True,
                                  timeout=300)
        assert finished.returncode == 0, finished.stderr.decode()[-2000:]
        saved = np.load(self.workdir / "params.npz")
        import jax
        expected = jax.tree_util.tree_flatten_with_path(self.reference.state.params)[0]
        assert len(saved.files) == len(expected)
        for path, value in expected:
            assert np.array_equal(saved[jax.tree_util.keystr(path)], np.asarray(value)), path


def test_sigkilled_run_resumes_and_ends_bitwise_equal(tmp_path):
    run = Run(tmp_path, "killed", 0.1)
    try:
        run.proc.send_signal(signal.SIGKILL)
        assert run.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        run.proc.kill()
    assert not (run.workdir / "params.npz").exists()  # it really died mid-run
    killed_at = max(_committed_steps(str(run.workdir / "checkpoints")))
    assert killed_at < 48
    run.finish_and_compare()
    log = (run.workdir / "train.log").read_text()
    assert f"resuming at step {killed_at}" in log


def test_ctrl_c_mid_run_saves_a_checkpoint_and_resumes_bitwise_equal(tmp_path):
    """The first Ctrl-C is taken between step calls (the loop's SIGINT handler), so the
    state saved is a step's result, never the donated state a running step was given."""
    run = Run(tmp_path, "interrupted", 0.02)
    try:
        run.proc.send_signal(signal.SIGINT)
        run.proc.communicate(timeout=60)
    finally:
        run.proc.kill()
    log = (run.workdir / "train.log").read_text()
    assert "checkpoint saved; run the same command again to resume" in log, log[-1000:]
    run.finish_and_compare()


def _saving(checkpoints: str) -> bool:
    """Whether orbax is writing a checkpoint now (its temporary folder exists)."""
    return os.path.isdir(checkpoints) and any(
        "orbax-checkpoint-tmp" in name for name in os.listdir(checkpoints))


@pytest.mark.slow
def test_killed_at_random_points_and_while_saving_ends_bitwise_equal(tmp_path):
    """SIGKILL at a random moment of each try (start-up, training, resuming), and once the
    moment a checkpoint's temporary folder appears; the last try runs to the end."""
    seed = int(os.environ.get("JAXNETS_KILL_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    run = Run(tmp_path, "killed_often", 0.1)
    checkpoints = str(run.workdir / "checkpoints")
    kills = []
    try:
        deadline = time.monotonic() + 60
        while not _saving(checkpoints) and run.proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint write seen within 60 s"
            time.sleep(0.001)
        kills.append(("while saving", _saving(checkpoints)))
        run.proc.kill()
        run.proc.wait(timeout=30)
        for _ in range(3):  # start-up takes ~3 s of these; the rest is 48 steps of 0.1 s
            proc = subprocess.Popen(run.command + ["0.1"], env=run.env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(1.0, 5.0))
            proc.kill()
            kills.append((f"at {max(_committed_steps(checkpoints))}", proc.wait(timeout=30)))
    finally:
        run.proc.kill()
    assert kills[0] == ("while saving", True), f"seed {seed}: {kills}"
    assert [code for _, code in kills[1:]].count(-signal.SIGKILL) >= 2, f"seed {seed}: {kills}"
    print(f"seed {seed} (JAXNETS_KILL_SEED to repeat): {kills}")
    run.finish_and_compare()
