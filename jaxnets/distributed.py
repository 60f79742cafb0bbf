"""Several processes: joining JAX's multi-process runtime, and the few facts and collectives
the engine needs from it.

`initialize_distributed` runs once, before anything else uses JAX (the CLI calls it first);
everything else here works the same in a single process, where it costs nothing.
"""

from __future__ import annotations

import os
import sys
import threading

import jax
import numpy as np

from jaxnets.train.config import ConfigError


def detected_cluster() -> str | None:
    """The multi-process launcher this process runs under, or None (a plain single process).

    SLURM (`srun`, more than one task), Open MPI (`mpirun`, more than one rank), or JAX's own
    `JAX_COORDINATOR_ADDRESS` variable: `jax.distributed.initialize()` finds the coordinator,
    process count and id there by itself.
    """
    env = os.environ
    if "SLURM_JOB_ID" in env and "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", 1)) > 1:
        return "SLURM"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", 1)) > 1:
        return "Open MPI"
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return "JAX_COORDINATOR_ADDRESS"
    return None


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           *, timeout_s: int = 120) -> bool:
    """Joins a multi-process run (`jax.distributed.initialize`) before JAX is used.

    With no arguments, joins only when `detected_cluster()` finds a launcher; otherwise does
    nothing (one process). Explicit arguments go together (all three, or none on a cluster).

    A process that cannot reach its peers within `timeout_s` seconds prints one line saying so
    and exits with status 1 (JAX itself would abort with a stack trace after its own timeout).

    Returns:
      True when this process is part of a multi-process run.
    """
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
             "process_id": process_id}
    cluster = detected_cluster()
    if cluster is None and all(v is None for v in given.values()):
        return False
    missing = [f"--{k}" for k, v in given.items() if v is None]
    if cluster is None and missing:
        raise ConfigError(f"multi-process runs need --coordinator_address, --num_processes and "
                          f"--process_id together; missing {', '.join(missing)}")
    if num_processes is not None and not 0 <= (process_id or 0) < num_processes:
        raise ConfigError(f"--process_id={process_id} must be in 0..{num_processes - 1} "
                          f"(--num_processes={num_processes})")
    where = coordinator_address or f"the coordinator that {cluster} names"
    who = f"process {process_id} of {num_processes}" if missing == [] else "this process"
    message = (f"error: {who} could not reach its peers through {where} within {timeout_s} s: "
               f"start every process (the same --coordinator_address and --num_processes, "
               f"each its own --process_id) and check that the coordinator's host and port are "
               f"reachable from here")
    watchdog = threading.Timer(timeout_s, _give_up, args=(message,))
    watchdog.daemon = True
    watchdog.start()
    try:  # JAX's own deadline comes later: ours prints a line, JAX's aborts with a trace
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   initialization_timeout=timeout_s + 60)
    finally:
        watchdog.cancel()
    return True


def _give_up(message: str) -> None:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    os._exit(1)  # the main thread is blocked in JAX's C++ connect; nothing else can stop it


def is_primary() -> bool:
    """True in the process that writes logs and checkpoint metadata (process 0)."""
    return jax.process_index() == 0


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is True on any of them (e.g. a Ctrl-C one received)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def from_primary(value: int) -> int:
    """Process 0's `value`, on every process."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def summed_over_processes(counts: np.ndarray) -> np.ndarray:
    """`counts` summed over every process (each counted its own shard)."""
    if jax.process_count() == 1:
        return counts
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(counts)).sum(axis=0)


_PEER_LOST = ("Gloo", "Connection closed by peer", "Connection reset by peer",
              "coordination service", "heartbeat")


def lost_peer(error: BaseException) -> str | None:
    """One line for a collective that failed because another process of the run died (the
    launcher names which one and why); None for any other error, whose traceback stays."""
    text = str(error)
    if jax.process_count() == 1 or not any(word in text for word in _PEER_LOST):
        return None
    return ("another process of this run stopped, so this one cannot go on (the last "
            "checkpoint is kept): fix that process's error and run the same command again")
