"""Checkpoints: the train state plus the data position, with orbax.

Each checkpoint is a directory `<workdir>/checkpoints/<step>/` holding two
items: `state` (step, params, opt_state, model_state, rng; StandardSave) and
`position` (`{"step", "epoch", "batch_in_epoch", "process_count"}`; JSON). Resuming means:
restore both, call the data's `train_epoch(epoch)` and skip `batch_in_epoch`
batches.

Safety: orbax writes a checkpoint to a temporary directory and marks it
complete (`commit_success.txt`/atomic rename) only when every file is
written; a checkpoint killed mid-write is ignored on restore. Old
checkpoints beyond `keep` are deleted only after the new one is committed,
so the last good checkpoint is never lost. The loop checks that a state is
finite before saving it.

Failures: a write that fails for a reason of the disk (no space left, a read-only or
failing disk) is a WriteError naming the checkpoint, raised by that save or, for an
async save, by the next save or wait at the latest; its partial directory is removed. A
restore that fails says what is damaged (which checkpoint, which array or file) and
recommends only an older checkpoint that was really read; orbax's reports of the failed
reads and writes left behind are dropped (the one-line error says it all).

Devices and processes: the loop saves one copy of the state, replicated on
its devices (`Strategy.unreplicate` in jaxnets/train/placement.py), and restores into
that layout (`Strategy.restore_target`), so a run may resume under another
strategy or device count, but not another number of processes (each reads
its own shard of the data: the position would point elsewhere; refused by
RunDir.resume_step). With several processes every process calls `save`
and the readers (orbax coordinates them): process 0 writes the metadata and
the position, each array is written once, and all processes must see the
same directory.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import traceback
import warnings

import numpy as np
import orbax.checkpoint as ocp

from jaxnets.train.config import ConfigError
from jaxnets.train.state import TrainState


@contextlib.contextmanager
def reader(directory: str):
    """A read-only view of the checkpoints in `directory`: it creates and changes nothing
    there, so a command can look before it decides to write. Yields None when the
    directory does not exist."""
    if not os.path.isdir(directory):
        yield None
        return
    # create=False and no saves: nothing is written (read_only=True would log two warnings)
    options = ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False)
    with ocp.CheckpointManager(os.path.abspath(directory), options=options) as manager:
        yield manager


def saved_steps(directory: str) -> list[int]:
    """The steps of the complete checkpoints in `directory` (none if it does not exist)."""
    with reader(directory) as manager:
        return [] if manager is None else list(manager.all_steps())


def read_position(manager, step: int) -> dict:
    """Only the data position of checkpoint `step` (cheap: reads one JSON)."""
    with explained_restore(manager, step):
        restored = manager.restore(step, args=ocp.args.Composite(position=ocp.args.JsonRestore()))
    return dict(restored.position)


def read_state(manager, step: int, abstract: TrainState, resume: str = "resume") -> TrainState:
    """The state of checkpoint `step`, shaped like `abstract` (from abstract_state)."""
    with explained_restore(manager, step, resume):
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract.checkpoint_items())))
        _check_finite(restored.state)  # saves are checked: NaN or Inf here is damage
    return abstract.with_items(dict(restored.state))


def _check_finite(tree) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.inexact) and not bool(jnp.isfinite(leaf).all()):
            raise FloatingPointError("a restored array holds NaN or Inf")


def read_params(manager, step: int):
    """The parameters of checkpoint `step` as saved (prediction: no model state needed)."""
    with explained_restore(manager, step, resume="predict"):
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore()))
    return restored.state["params"]


class WriteError(OSError):
    """A checkpoint or another file of a run could not be written (no space left on the
    device, a read-only or failing disk); `errno` is the OS's. The message names what;
    `fit` adds the last good checkpoint and what to do. The CLI exits with
    `exit_status` (sysexits' EX_IOERR), one line, no traceback."""

    exit_status = 74

    def __str__(self) -> str:
        return self.strerror


def write_error(error: BaseException, what: str) -> WriteError | None:
    """`error` as a WriteError about writing `what`, or None when no OS error is behind it
    (a bug stays a bug)."""
    code = os_error_code(error)
    if code is None:
        return None
    return WriteError(code, f"{os.strerror(code).lower()} writing {what}")


def os_error_code(error: BaseException | None) -> int | None:
    """The OS error number behind `error` or its causes: an OSError's, or the one
    TensorStore writes in its text ("... [os_error_code='28']")."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno:
            return error.errno
        found = re.search(r"os_error_code='?(\d+)", str(error))
        if found:
            return int(found[1])
        error = error.__cause__ or error.__context__
    return None


class Checkpointer:
    """Saves (TrainState, data position) under `directory`; `reader` restores them.

    Args:
      directory: where the step directories go (created if missing).
      keep: how many of the newest checkpoints to keep.
      async_save: write in a background thread; the device arrays are copied
        to host memory before `save` returns, so the caller may donate the
        state to the next step right away.

    A failed write raises WriteError (that save, or the next save or wait for an async
    one) and removes the partial directory; the Checkpointer takes no more saves.
    """

    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        _quiet_orbax_leftovers()
        options = ocp.CheckpointManagerOptions(  # cleanup: the partial saves of a kill
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._pending: int | None = None  # the step an async save is writing
        self._failed: WriteError | None = None  # and, once one failed, which and why
        self._failed_step: int | None = None

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, state: TrainState, position: dict) -> None:
        """Saves `state` and `position` as the checkpoint of `position['step']`."""
        step = int(position["step"])
        self.wait()  # the previous save's failure stops the run here, before this one
        if step in self.manager.all_steps():
            return  # already saved (e.g. the end of a run that was complete)
        with self._writing(step):
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state.checkpoint_items()),
                position=ocp.args.JsonSave(dict(position))), force=True)
            self._pending = step

    def wait(self) -> None:
        """Blocks until every pending write is committed."""
        if self._failed is not None:
            raise self._failed
        with self._writing(self._pending):
            self.manager.wait_until_finished()
        self._pending = None

    def close(self) -> None:
        """Lets orbax's threads go (after a failed save, orbax re-raises it: dropped)."""
        try:
            self.manager.close()
        except Exception:  # pylint: disable=broad-except
            if self._failed is None:
                raise
            self._remove_partial(self._failed_step)  # a write that was still in flight

    @contextlib.contextmanager
    def _writing(self, step: int | None):
        """A failed write of checkpoint `step` as one WriteError, its partial files gone."""
        try:
            yield
        except Exception as e:  # orbax and TensorStore raise many kinds
            which = f"checkpoint {step}" if step is not None else "a checkpoint"
            error = write_error(e, f"{which} in {self.directory}")
            if error is None:
                raise
            self._failed, self._failed_step = error, step
            _join_orbax_threads()  # they write on after the first error
            gc.collect()  # orbax's abandoned writes report themselves now, while quieted
            self._remove_partial(step)
            raise error from None

    def _remove_partial(self, step: int | None) -> None:
        import jax  # pylint: disable=g-import-not-at-top
        if step is None or jax.process_index() != 0:  # one process removes what all wrote
            return
        for path in glob.glob(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp*")):
            shutil.rmtree(path, ignore_errors=True)


def _join_orbax_threads(timeout: float = 60.0) -> None:
    """Waits for the threads of orbax's operations: a failed save's go on writing, and
    would make its directory again after it is removed. Thread.join, not orbax's own
    join, which re-raises the thread's error."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if type(thread).__module__.startswith("orbax.") and thread.is_alive():
            threading.Thread.join(thread, max(0.0, deadline - time.monotonic()))


@contextlib.contextmanager
def explained_restore(manager, step: int, resume: str = "resume"):
    """A failed restore of checkpoint `step` as one ConfigError line: what is damaged
    (checked by reading the checkpoint as saved; if that works, the checkpoint is another
    model's), and the way on: an older checkpoint that was really read, or starting over.
    Errors of the device (out of memory, a lost peer) pass as they are."""
    import jax  # pylint: disable=g-import-not-at-top
    _quiet_orbax_leftovers()
    try:
        yield
    except Exception as e:  # orbax and tensorstore raise many kinds, some plain Exception
        if isinstance(e, (jax.errors.JaxRuntimeError, MemoryError, ConfigError)):
            raise
        directory = str(manager.directory)
        damage = unreadable(directory, step)
        if damage is None:
            raise ConfigError(
                f"checkpoint step {step} in {directory} cannot be restored into this model, "
                f"though it reads ({_first_line(e)}): the workdir holds another model's run, "
                "pass a new workdir (--workdir)") from None
        raise ConfigError(f"checkpoint step {step} in {directory} cannot be restored: "
                          f"{damage}; {_way_on(manager, step, resume)}") from None


def unreadable(directory: str, step: int) -> str | None:
    """What is wrong with checkpoint `step`, in words, or None when its data position and
    every array of its state read (to host memory) and the floats are finite."""
    import jax  # pylint: disable=g-import-not-at-top
    from etils import epath  # pylint: disable=g-import-not-at-top
    _quiet_orbax_leftovers()
    path = epath.Path(os.path.abspath(directory)) / str(step)
    try:  # the handlers themselves: a Checkpointer would warn of step metadata at each
        ocp.JsonCheckpointHandler().restore(path / "position")
    except Exception as e:  # pylint: disable=broad-except
        return _damage(e, path, "its data position")
    handler = ocp.PyTreeCheckpointHandler()
    try:
        saved = handler.metadata(path / "state").tree
        to_host = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), saved)
        state = handler.restore(path / "state", args=ocp.args.PyTreeRestore(restore_args=to_host))
    except Exception as e:  # pylint: disable=broad-except
        return _damage(e, path, "its state")
    finally:
        handler.close()
    for keys, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.inexact) and not np.isfinite(leaf).all():
            name = ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in keys)
            return f"array {name} holds NaN or Inf (a saved state is finite: it is corrupt)"
    return None


def _damage(error: BaseException, path: str, item: str) -> str:
    """e.g. 'array params.FC3.kernel is truncated (file state/d/7d32...)', from the
    innermost error of a failed read of the checkpoint at `path`."""
    while error.__cause__ is not None:  # orbax wraps TensorStore's error, which says it
        error = error.__cause__
    text = str(error)
    array = re.search(r'(?:Error reading|Metadata at) "([^"/]+)/', text)
    files = re.findall(r'local file "([^"]+)"', text)
    if any(c in text for c in ("OUT_OF_RANGE", "not valid for value of size")):
        kind = "truncated"
    elif (isinstance(error, (FileNotFoundError, KeyError)) or "NOT_FOUND" in text
          or "does not exist" in text):
        kind = "missing"
    elif isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
        kind = "corrupt (a metadata file is not JSON)"
    elif any(c in text for c in ("DATA_LOSS", "FAILED_PRECONDITION", "checksum")):
        kind = "corrupt"
    else:
        return f"{item} is unreadable ({_first_line(error)})"
    files = [f for f in files if not f.endswith("/")]  # a file, not the OCDBT database
    where = f" (file {os.path.relpath(files[-1], path)})" if files else ""
    return f"{f'array {array[1]}' if array else item} is {kind}{where}"


def newest_readable(directory: str, below: int | None = None) -> int | None:
    """The newest checkpoint in `directory` (older than `below`) that really reads."""
    for step in reversed(saved_steps(directory)):
        if (below is None or step < below) and unreadable(directory, step) is None:
            return step
    return None


def _way_on(manager, step: int, resume: str) -> str:
    """Delete the damaged ones to go on from the newest older checkpoint that reads, or,
    when none does, move the checkpoints away to start over."""
    directory = str(manager.directory)
    older = newest_readable(directory, below=step)
    if older is None:
        return (f"no older checkpoint reads either: move {directory} away "
                f"(mv {directory} {directory}.damaged) to start over")
    damaged = " and ".join(os.path.join(directory, str(s))
                           for s in sorted(manager.all_steps()) if s > older)
    return f"if it is damaged, delete {damaged} to {resume} from step {older} (checked: it reads)"


def _first_line(error: BaseException) -> str:
    """`Type: text` of an error's first line, without TensorStore's spec, short."""
    text = (str(error).strip().splitlines() or [""])[0]
    text = re.split(r" \[tensorstore_spec=| See full TensorStore details", text)[0]
    return f"{type(error).__name__}: {text[:160]}"


def _quiet_orbax_leftovers() -> None:
    """When a read or write fails, orbax's other reads and writes of that checkpoint are
    left behind, and each reports itself around the one-line error with a traceback:
    'Event loop is closed' or an unclosed coroutine (unraisable exceptions), asyncio's
    '... exception was never retrieved' (a log record), 'coroutine ... was never awaited'
    (a warning), and orbax's own error records of a failed async save (the WriteError says
    it). Only those reports are dropped; installed once."""
    if _quieted:
        return
    _quieted.append(True)
    previous = sys.unraisablehook

    def hook(unraisable):
        value, where = unraisable.exc_value, getattr(unraisable.object, "__name__", "")
        closed = isinstance(value, RuntimeError) and str(value) == "Event loop is closed"
        if not (closed or where in _COROUTINES):
            previous(unraisable)
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(lambda record: not _about_orbax_io(record))
    logging.getLogger("absl").addFilter(lambda record: not _failed_orbax_write(record))
    for name in _COROUTINES:
        warnings.filterwarnings("ignore", message=f"coroutine '{name}' was never awaited")


def _about_orbax_io(record: logging.LogRecord) -> bool:
    """An asyncio 'exception was never retrieved' record of one of orbax's reads or writes."""
    text = str(record.msg)
    if "exception was never retrieved" not in text:
        return False
    error = record.exc_info[1] if record.exc_info else None
    frames = traceback.extract_tb(error.__traceback__) if error is not None else []
    return (any("/orbax/" in frame.filename for frame in frames)
            or any(marker in text for marker in (*_COROUTINES, "OCDBT", "reading array index")))


def _failed_orbax_write(record: logging.LogRecord) -> bool:
    """orbax's error record (with its traceback) of a save that failed for the disk."""
    if "/orbax/" not in record.pathname or record.levelno < logging.ERROR:
        return False
    error = record.exc_info[1] if record.exc_info else None
    return os_error_code(error) is not None or "os_error_code=" in str(record.msg)


_quieted: list = []  # one item once the filters are installed
_COROUTINES = ("_read_array_index_and_device_put", "async_deserialize",  # orbax's reads,
               "write_fragment", "async_serialize_from_host",  # writes
               "Store._get_array_metadatas")  # and the array metadata of either
