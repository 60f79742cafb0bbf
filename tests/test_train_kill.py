"""A training process killed with SIGKILL resumes and ends bitwise equal to an unkilled run."""

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

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


def test_sigkilled_run_resumes_and_ends_bitwise_equal(tmp_path):
    script = tmp_path / "killrun.py"
    script.write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("killrun", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.run(str(tmp_path / "reference"))

    workdir = tmp_path / "killed"
    command = [sys.executable, str(script), str(workdir)]
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(command + ["0.1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(s >= 8 for s in _committed_steps(str(workdir / "checkpoints"))):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
    assert not (workdir / "params.npz").exists()  # it really died mid-run
    killed_at = max(_committed_steps(str(workdir / "checkpoints")))
    assert killed_at < 48

    finished = subprocess.run(command + ["0"], env=env, capture_output=True, timeout=300)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    saved = np.load(workdir / "params.npz")
    import jax
    expected = jax.tree_util.tree_flatten_with_path(reference.state.params)[0]
    assert len(saved.files) == len(expected)
    for path, value in expected:
        assert np.array_equal(saved[jax.tree_util.keystr(path)], np.asarray(value)), path
    log = (workdir / "train.log").read_text()
    assert f"resuming at step {killed_at}" in log
