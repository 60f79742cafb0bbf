"""A run's directory: the one owner of every file a run reads and writes, and of its lock.

    <workdir>/
      .lock                held (flock) by process 0 while a command uses the workdir
      config.json          the resolved config: what was trained
      model.json           the model factory and the data-derived sizes it was built with
      vocab.json           text and sequence runs: the token ids (of the outputs)
      source_vocab.json    translation: the token ids of the inputs
      checkpoints/<step>/  orbax: train state + data position (checkpoint.py)
      metrics.jsonl        one record per log or eval: {"step", "split", ...}
      train.log            every line the run printed
      tensorboard/         event files
      summary.json         the final numbers
      learning_curve.png   loss and accuracy against step
      clip.png             frame-level video runs: a test clip, each frame's prediction

A command looks first and writes after: `claimed()` takes the lock, `resume_step(config)`
and the readers only read, and `begin(config)` writes the run's description once every check
has passed. A refused or failed command leaves the workdir as it was (a workdir it had to
create is removed again). JSON files are written atomically (temp file + rename), so a
crash never leaves half a file; a torn metrics.jsonl line (a crash mid-append) is skipped
with a one-line warning. In a multi-process run only process 0 writes these files;
checkpoints are written by every process together (orbax).

A write the disk refuses (no space left, a read-only or failing disk) is a WriteError
naming the file, and leaves nothing torn: a JSON file or the plot keeps its old
version, metrics.jsonl and train.log are cut back to their last whole line. `fit`
adds the last good checkpoint to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile


from jaxnets.train import checkpoint, workdir_lock
from jaxnets.train.checkpoint import WriteError, write_error
from jaxnets.train.config import ConfigError, diff, read_json

CONFIG = "config.json"
MODEL = "model.json"
VOCAB = "vocab.json"
SOURCE_VOCAB = "source_vocab.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
LOG = "train.log"
TENSORBOARD = "tensorboard"
CURVE = "learning_curve.png"
CLIP = "clip.png"
CHECKPOINTS = "checkpoints"
LOCK = ".lock"
DAMAGED_FIX = "this run cannot be loaded: train it again in a new workdir (--workdir)"


class RunDir:
    """The workdir of one run.

    Args:
      path: the workdir (made absolute).
      primary: whether this process writes the run's files (process 0); default: ask JAX.
    """

    def __init__(self, path: str, primary: bool | None = None):
        self.path = os.path.abspath(path)
        if primary is None:
            from jaxnets import distributed  # pylint: disable=g-import-not-at-top
            primary = distributed.is_primary()
        self.primary = primary
        self.held = False
        self._staged: dict[str, object] = {}   # files `begin` writes: name -> writer
        self._resume: tuple | None = None      # (config json, latest step) once checked
        self._positions: dict[int, dict] = {}   # checkpoint step -> data position
        self._warned: set[tuple[str, int]] = set()

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- the lock ------------------------------------------------------------------------

    @contextlib.contextmanager
    def claimed(self):
        """Holds the workdir for one command: creates it if missing, checks that it can be
        written, and takes its lock (process 0; every process hears the answer). A second
        run there would interleave its checkpoints and logs with the first's. A workdir
        created here and left empty by a failed command is removed again. Re-entrant."""
        if self.held:
            yield self
            return
        created = not os.path.isdir(self.path)
        with contextlib.ExitStack() as stack:
            if created:
                stack.callback(self._remove_if_unused)
            self._make()
            holder = workdir_lock.take(self.file(LOCK), stack) if self.primary else None
            from jaxnets import distributed  # pylint: disable=g-import-not-at-top
            holder = distributed.from_primary(holder or 0) or None
            if holder is not None:
                raise ConfigError(
                    f"{self.path} is in use by another run (pid "
                    f"{holder if holder > 0 else '?'}): wait for it to finish, stop it, or "
                    "pass another workdir (--workdir)")
            self.held = True
            stack.callback(setattr, self, "held", False)
            yield self

    def _make(self) -> None:
        """Creates the workdir, or says in one line why files cannot be written there."""
        try:
            os.makedirs(self.path, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as e:
            why = "a file is in the way" if os.path.isfile(self.path) else e.strerror
            raise ConfigError(f"workdir {self.path}: cannot write in it ({why}): "
                              "give a writable directory (--workdir)") from None

    def _remove_if_unused(self) -> None:
        if os.path.isdir(self.path) and not os.listdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)

    # -- looking (reads only) ------------------------------------------------------------

    def resume_step(self, config, process_count: int = 1) -> int | None:
        """The checkpoint step a run of `config` resumes from, or None for a fresh start.

        ConfigError when the workdir holds a run of another config (config.json, or
        model.json where config.json is gone), or checkpoints written by another number
        of processes (each process reads its own shard: the position would point
        elsewhere). Checked once per RunDir and config.
        """
        current = json.loads(config.to_json())
        if self._resume is not None and self._resume[0] == current:
            return self._resume[1]
        with checkpoint.reader(self.file(CHECKPOINTS)) as manager:
            latest = manager.latest_step() if manager is not None else None
            if latest is not None:
                self._refuse_another_config(current)
                self._positions[latest] = checkpoint.read_position(manager, latest)
                wrote = self._positions[latest].get("process_count", 1)
                if wrote != process_count:
                    raise ConfigError(
                        f"checkpoint step {latest} in {self.path} was written by {wrote} "
                        f"process(es), this run has {process_count}: resume it with {wrote} "
                        "(the launcher's --num_processes), or pass a new workdir (--workdir)")
        self._resume = (current, latest)
        return latest

    def position(self, step: int) -> dict:
        """The data position saved with checkpoint `step`: step, epoch, batch_in_epoch."""
        if step not in self._positions:
            with checkpoint.reader(self.file(CHECKPOINTS)) as manager:
                self._positions[step] = checkpoint.read_position(manager, step)
        return self._positions[step]

    def _refuse_another_config(self, current: dict) -> None:
        start_over = f"pass a new workdir (--workdir), or delete {self.path} to start over"
        if os.path.exists(self.file(CONFIG)):
            saved = read_json(self.file(CONFIG), fix=(
                f"delete it to resume with this command's config unchecked, {start_over}"))
            changes = diff(saved, current)
        elif os.path.exists(self.file(MODEL)):  # config.json deleted: the model still counts
            saved = self.read_json(MODEL)
            changes = [f"{key}: {saved.get(key)!r} -> {current.get(key)!r}"
                       for key in ("model", "model_kwargs", "dtype")
                       if saved.get(key) != current.get(key)]
        else:
            return
        if changes:
            raise ConfigError(f"{self.path} holds a run with another config "
                              f"({'; '.join(changes)}): {start_over}")

    def read_json(self, name: str):
        """A run file's JSON; a missing or damaged one is a ConfigError naming the fix."""
        path = self.file(name)
        if not os.path.exists(path):
            raise ConfigError(f"{self.path} has no {name}: is it the --workdir of a finished "
                              "`python -m jaxnets.experiments.run`?")
        return read_json(path, DAMAGED_FIX)

    def read_vocab(self, name: str = VOCAB):
        """The saved Vocabulary (text) or Symbols (sequence tasks) in `name`, or None."""
        path = self.file(name)
        if not os.path.exists(path):
            return None
        saved = read_json(path, "the run's token ids are lost: train it again in a new "
                                "workdir (--workdir)")
        if "symbols" in saved:
            from jaxnets.data.sequence_tasks import Symbols  # pylint: disable=g-import-not-at-top
            return Symbols.load(path)
        from jaxnets.data.tokenizer import Vocabulary  # pylint: disable=g-import-not-at-top
        try:
            return Vocabulary.load(path)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def restore(self, step: int, target):
        """The train state of checkpoint `step`, shaped and placed like `target`."""
        with checkpoint.reader(self.file(CHECKPOINTS)) as manager:
            return checkpoint.read_state(manager, step, target)

    def restore_params(self):
        """The parameters of the newest checkpoint (prediction)."""
        with checkpoint.reader(self.file(CHECKPOINTS)) as manager:
            step = manager.latest_step() if manager is not None else None
            if step is None:
                raise ConfigError(f"{self.file(CHECKPOINTS)} holds no complete checkpoint: "
                                  "train first")
            return checkpoint.read_params(manager, step)

    def metrics(self) -> list[dict]:
        """The records of metrics.jsonl; a damaged line is skipped with a one-line warning."""
        path, records = self.file(METRICS), []
        if not os.path.exists(path):
            return records
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if raw.strip():
                    record, why = _record(raw)
                    if why is None:
                        records.append(record)
                    elif (path, number) not in self._warned:
                        self._warned.add((path, number))
                        print(f"warning: {path} line {number} is damaged ({why}): skipped",
                              file=sys.stderr, flush=True)
        return records

    # -- writing (after every check) -----------------------------------------------------

    def stage(self, name: str, value) -> None:
        """A file `begin` writes: a JSON-able dict, or an object with `save(path)` (a
        vocabulary). Staged, not written, so a command refused later writes nothing."""
        self._staged[name] = value

    def begin(self, config) -> None:
        """Writes config.json and the staged files: the run is on. Called once every check
        has passed and the state exists."""
        if not self.primary:
            return
        self.write_json(CONFIG, json.loads(config.to_json()))
        for name, value in self._staged.items():
            if isinstance(value, dict):
                self.write_json(name, value)
            else:
                self._atomically(name, value.save)
        self._staged.clear()

    def write_json(self, name: str, value) -> None:
        def dump(path):
            with open(path, "w", encoding="utf-8") as f:
                json.dump(value, f, indent=1)
        self._atomically(name, dump)

    def _atomically(self, name: str, write) -> None:
        """`write(temp path)`, then rename over `name`: readers see the old or the new file."""
        if not self.primary:
            return
        with self.writing(name):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1],
                                       dir=self.path)  # the suffix: matplotlib reads the format
            os.close(fd)
            try:
                write(tmp)
                os.replace(tmp, self.file(name))
            except BaseException:
                os.unlink(tmp)
                raise

    @contextlib.contextmanager
    def writing(self, name: str):
        """An OSError of writing the run's file `name` as a WriteError naming it."""
        try:
            yield
        except OSError as e:
            error = None if isinstance(e, WriteError) else write_error(e, f"{name} in {self.path}")
            if error is None:
                raise
            raise error from None

    def checkpointer(self, keep: int) -> checkpoint.Checkpointer:
        return checkpoint.Checkpointer(self.file(CHECKPOINTS), keep)

    def keep_metrics_until(self, start_step: int) -> None:
        """Drops the records after `start_step` (a resumed run logs them again) and any
        damaged line, so the file reads as one uninterrupted run; untouched if none."""
        if not self.primary or not os.path.exists(self.file(METRICS)):
            return
        with open(self.file(METRICS), "rb") as f:
            lines = sum(1 for raw in f if raw.strip())
        records = self.metrics()
        kept = [r for r in records if r["step"] < start_step
                or (r["step"] == start_step and r["split"] == "train")]
        if len(kept) != lines:
            self._atomically(METRICS, lambda path: _write_lines(path, kept))

    def append_metrics(self, record: dict) -> None:
        if self.primary:
            with contextlib.closing(_Appended(self, METRICS)) as f:
                f.write(json.dumps(record) + "\n")

    def write_summary(self, summary: dict) -> None:
        self.write_json(SUMMARY, summary)

    def write_curve(self, plot) -> None:
        """learning_curve.png, drawn by `plot(path)`."""
        self.write_plot(CURVE, plot)

    def write_plot(self, name: str, plot) -> None:
        """The picture `name` (learning_curve.png, clip.png), drawn by `plot(path)`."""
        self._atomically(name, plot)

    def open_log(self) -> "_Appended":
        """train.log, opened for appending."""
        return _Appended(self, LOG)

    def tensorboard_dir(self, fresh: bool) -> str:
        """The event files' directory; `fresh`: a new run drops the events of one that
        never checkpointed."""
        if fresh and self.primary:
            shutil.rmtree(self.file(TENSORBOARD), ignore_errors=True)
        return self.file(TENSORBOARD)


def _record(raw: bytes) -> tuple[dict | None, str | None]:
    """(record, None) for a good metrics line, else (None, why not)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except json.JSONDecodeError as e:
        return None, f"not JSON: {e.msg}"
    if not (isinstance(record, dict) and isinstance(record.get("step"), int)
            and isinstance(record.get("split"), str)):
        return None, "not a record with 'step' and 'split'"
    return record, None


class _Appended:
    """A run file (train.log, metrics.jsonl) appended to unbuffered: a write the disk
    refuses is a WriteError naming the file, and the file is cut back to its size before,
    so no torn line stays and nothing is left to flush."""

    def __init__(self, run: RunDir, name: str):
        self.run, self.name = run, name
        with run.writing(name):
            self.fd = os.open(run.file(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, text: str) -> None:
        with self.run.writing(self.name):
            size, view = os.lseek(self.fd, 0, os.SEEK_END), memoryview(text.encode("utf-8"))
            try:
                while view:
                    view = view[os.write(self.fd, view):]
            except OSError:
                os.ftruncate(self.fd, size)
                raise

    def flush(self) -> None:
        pass  # each write went to the file

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _write_lines(path: str, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
