"""Start N local processes of one run: multi-process training tried on one machine.

    python -m jaxnets.experiments.launch --num_processes=2 -- --model=lenet_mnist
    python -m jaxnets.experiments.launch --num_processes=2 --devices_per_process=2 \\
        -- --model=lenet_mnist --parallel=sharding --config.smoke=True

Everything after `--` goes to `python -m jaxnets.experiments.run`, and each
process gets `--coordinator_address=127.0.0.1:<port> --num_processes=N
--process_id=i` on top: the same run as on N hosts, each process reading its
own shard of the data, process 0 writing the logs and the checkpoints' metadata.

Process 0's output is shown as it is; the others' lines are prefixed with
`[process i]`. Each process runs under --timeout; the first one to fail (or
time out) stops the others, and its exit status is the launcher's (124 for a
timeout). Ctrl-C reaches every process, and they save a checkpoint together.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from jaxnets import cli

_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 2, "How many processes to start.",
                                      lower_bound=1)
_PORT = flags.DEFINE_integer("port", 0, "The coordinator's port on 127.0.0.1 (0: a free one).",
                            lower_bound=0, upper_bound=65535)
_DEVICES = flags.DEFINE_integer(
    "devices_per_process", 0, "Give each process this many devices: fake CPU devices "
    "(XLA_FLAGS), and GPUs i*K..i*K+K-1 (CUDA_VISIBLE_DEVICES). 0: leave them as they are.",
    lower_bound=0)
_TIMEOUT = flags.DEFINE_integer(
    "timeout", 86400, "Seconds the processes may run; then all are stopped (a hung run "
    "ends). Raise it for runs longer than a day.", lower_bound=1)

TIMED_OUT = 124


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(port: int) -> int:
    """`port` if nothing listens there (the coordinator would crash on a taken one)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise ValueError(f"--port={port}: {e.strerror}: give another port, or 0 for a "
                             "free one") from None
    return port


def worker_env(process_id: int, devices: int) -> dict:
    """The environment of process `process_id`: its own devices when `devices` > 0."""
    env = dict(os.environ)
    if devices:
        flag = f"--xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), flag]))
        first = process_id * devices
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(first, first + devices)))
    return env


def start(process_id: int, num_processes: int, port: int, run_flags: list[str],
          devices: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "jaxnets.experiments.run", *run_flags,
               f"--coordinator_address=127.0.0.1:{port}",
               f"--num_processes={num_processes}", f"--process_id={process_id}"]
    quiet = process_id > 0  # their lines go through _prefix
    proc = subprocess.Popen(command, env=worker_env(process_id, devices), text=True,
                            stdout=subprocess.PIPE if quiet else None,
                            stderr=subprocess.STDOUT if quiet else None)
    if quiet:
        threading.Thread(target=_prefix, args=(proc, f"[process {process_id}] "),
                         daemon=True).start()
    return proc


def _prefix(proc: subprocess.Popen, prefix: str) -> None:
    for line in proc.stdout:
        sys.stderr.write(prefix + line)


def wait_all(procs: list[subprocess.Popen], timeout: float) -> int:
    """0 when every process exits 0; else the first failure's status, the rest stopped."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [p.poll() for p in procs]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            stop(procs)
            i, code = failed[0]
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            print(f"error: process {i} {how}; the other processes were stopped (the last "
                  "checkpoint is kept)", file=sys.stderr)
            return code if code > 0 else 1
        if all(c == 0 for c in codes):
            return 0
        if time.monotonic() > deadline:
            stop(procs)
            print(f"error: the run did not finish within --timeout={timeout:g} s; every "
                  "process was stopped (any checkpoint already written is kept)", file=sys.stderr)
            return TIMED_OUT
        time.sleep(0.2)


def settle(procs: list[subprocess.Popen], grace: float) -> None:
    """Waits up to `grace` seconds for every process to exit by itself (after a Ctrl-C each
    saves a checkpoint with the others), then stops what is left. A SIGTERM at once would
    cut into that save: JAX's preemption notifier takes SIGTERM in a multi-process run."""
    deadline = time.monotonic() + grace
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            break
    stop(procs)


def stop(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM every running process, SIGKILL what is left after `grace` seconds."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv) -> int:
    run_flags = argv[1:]
    if not run_flags:
        raise ValueError("give the run's flags after --, e.g. "
                         "python -m jaxnets.experiments.launch --num_processes=2 -- "
                         "--model=lenet_mnist")
    reserved = [f for f in run_flags if f.split("=")[0] in
                ("--coordinator_address", "--num_processes", "--process_id")]
    if reserved:
        raise ValueError(f"the launcher sets {', '.join(reserved)} itself: drop it from the "
                         "run's flags")
    n, port = _NUM_PROCESSES.value, check_port(_PORT.value) if _PORT.value else free_port()
    procs = [start(i, n, port, run_flags, _DEVICES.value) for i in range(n)]
    try:
        return wait_all(procs, _TIMEOUT.value)
    except KeyboardInterrupt:  # the processes got the Ctrl-C too: they save, then exit
        settle(procs, grace=60.0)
        return 130


if __name__ == "__main__":
    cli.run(main)
