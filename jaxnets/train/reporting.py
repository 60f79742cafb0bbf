"""What a run tells its user: progress lines, TensorBoard, metrics.jsonl, a plot.

Files in the workdir:
  train.log            every progress, eval and summary line (plain text)
  metrics.jsonl        one JSON record per log or eval: {"step", "split", ...}
  tensorboard/         event files (tensorboardX; `tensorboard --logdir <workdir>`)
  learning_curve.png   train and eval loss/accuracy against step, at the end
  summary.json         the final numbers

The events and the plot need tensorboardX and matplotlib, the `plots` extra (`pip install
"jaxnets[plots]"`); without them a run writes the other files and says once, on stderr
(and in each train.log), what it leaves out and how to get it.

Every file goes through the run's RunDir (jaxnets/train/rundir.py). A resumed run drops
the records after its checkpoint (they will be logged again), so the files read as one
uninterrupted run. In a multi-process run
only process 0 writes (and prints); the others' Reporter is silent.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import time

from jaxnets.import_guard import without_module

PLOTS_EXTRA = 'pip install "jaxnets[plots]"'
PLOT_FILES = {"tensorboardX": "TensorBoard events", "matplotlib": "learning_curve.png"}
_noted: set[str] = set()  # the missing packages already said on this process's terminal


def format_duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def progress_line(*, name, step, total, epoch, loss, accuracy, lr, examples_per_sec,
                  eta_seconds, stall_fraction) -> str:
    """One line of progress, e.g.
    [lenet_mnist] step 300/1250 (24%) | epoch 5 | loss 0.2113 | acc 93.75% | lr 9.1e-04
    | 5,120 ex/s | ETA 1m02s | input stall 3%
    """
    speed = (f"{examples_per_sec:,.0f} ex/s | ETA {format_duration(eta_seconds)} | "
             f"input stall {100 * stall_fraction:.0f}%" if examples_per_sec else
             "- ex/s (compiling) | ETA - | input stall -")
    return (f"[{name}] step {step}/{total} ({100 * step / max(total, 1):.0f}%) | "
            f"epoch {epoch:g} | loss {loss:.4f} | acc {100 * accuracy:.2f}% | lr {lr:.2g} | "
            f"{speed}")


class Reporter:
    """Writes progress lines, metrics.jsonl, TensorBoard events and the final plot, all
    through the run's `RunDir` (process 0 writes; the others' Reporter is silent)."""

    def __init__(self, run, name: str, *, start_step: int = 0, progress: bool = True,
                 stream=None):
        self.run, self.name, self.progress = run, name, progress
        self.stream = stream or sys.stdout
        self.primary = run.primary
        if not self.primary:  # another process writes the files
            return
        run.keep_metrics_until(start_step)
        self.log_file = run.open_log()
        missing = [package for package in PLOT_FILES if not _installed(package)]
        if missing:  # in train.log each run, on the terminal once a process
            self.line(missing_note(missing), show=False)
            if not _noted.issuperset(missing):
                print(missing_note(missing), file=sys.stderr, flush=True)
                _noted.update(missing)
        self.draws_curve = "matplotlib" not in missing
        self.tb = None if "tensorboardX" in missing else _event_writer(run, start_step)

    def line(self, text: str, *, show: bool = True) -> None:
        """A line for the terminal (when progress is on) and always for train.log."""
        if not self.primary:
            return
        if show and self.progress:
            print(text, file=self.stream, flush=True)
        self.log_file.write(text + "\n")
        self.log_file.flush()

    def record(self, step: int, split: str, values: dict) -> None:
        """Appends to metrics.jsonl and TensorBoard (`<split>/<name>` scalars)."""
        if not self.primary:
            return
        self.run.append_metrics({"step": int(step), "split": split, **values})
        if self.tb is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.tb.add_scalar(f"{split}/{key}", value, int(step))
        self.tb.flush()

    def train(self, *, step, total, epoch, metrics, lr, meter: dict) -> None:
        self.record(step, "train", {"epoch": epoch, "loss": metrics["loss"],
                                    "accuracy": metrics["accuracy"], "lr": lr,
                                    "examples_per_sec": meter["examples_per_sec"],
                                    "input_stall": meter["stall_fraction"]})
        self.line(progress_line(name=self.name, step=step, total=total, epoch=epoch,
                                loss=metrics["loss"], accuracy=metrics["accuracy"], lr=lr,
                                examples_per_sec=meter["examples_per_sec"],
                                eta_seconds=meter["eta_seconds"],
                                stall_fraction=meter["stall_fraction"]))

    def eval(self, *, step, epoch, metrics) -> None:
        self.record(step, "eval", {"epoch": epoch, **metrics})
        self.line(f"[{self.name}] eval at step {step} (epoch {epoch:g}): "
                  f"loss {metrics['loss']:.4f} | accuracy {100 * metrics['accuracy']:.2f}% "
                  f"on {_scored(metrics)}")

    def finish(self, summary: dict) -> str:
        """Writes summary.json and the learning curve; returns the one-line summary."""
        if not self.primary:
            return summary_line(summary)
        self.run.write_summary(summary)
        if self.draws_curve:
            records = self.run.metrics()
            self.run.write_curve(lambda path: plot_learning_curve(records, path, title=self.name))
        text = summary_line(summary)
        self.line(text)
        return text

    def close(self) -> None:
        if not self.primary:
            return
        try:
            if self.tb is not None:
                self.tb.close()
        finally:
            self.log_file.close()


def missing_note(missing: list[str]) -> str:
    """The note of a run without some of the `plots` extra's packages (keys of PLOT_FILES)."""
    files = " and no ".join(PLOT_FILES[package] for package in missing)
    return (f"note: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
            f"installed, so this run writes no {files} (metrics.jsonl has every number): "
            f"{PLOTS_EXTRA} adds them")


def _installed(package: str) -> bool:
    """Whether `package` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:  # an import hook that refuses it
        return False


def _event_writer(run, start_step: int) -> "_Events":
    """TensorBoard events on the run's tensorboard/ (a fresh run drops old events; a resumed
    one purges those after its checkpoint)."""
    return _Events(run.tensorboard_dir(fresh=not start_step),
                   purge_step=start_step + 1 if start_step else None)


class _Events:
    """TensorBoard scalars written by the calling thread, in tensorboardX's record format
    and protos (its RecordWriter, Event, summary.scalar). Its SummaryWriter writes from a
    worker thread: on a full disk
    that thread printed its own traceback and died, and its bounded queue then blocked the
    loop; here the loop's write fails, and fit says so in one line (loop.py)."""

    def __init__(self, logdir: str, purge_step: int | None):
        with without_module("torch"):  # tensorboardX would import it: 1.4 s (import_guard.py)
            # pylint: disable=g-import-not-at-top
            from tensorboardX import summary
            from tensorboardX.proto.event_pb2 import Event, SessionLog
            from tensorboardX.record_writer import RecordWriter
        # A NaN/Inf eval loss is said once, by the loop, with its cause; not by tensorboardX.
        logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
        os.makedirs(logdir, exist_ok=True)
        self._scalar, self._event = summary.scalar, Event
        # tensorboardX's file name (events.out.tfevents.<second>.<host>), with the same
        # moment's nanoseconds after it: a resume within that second gets its own file,
        # which sorts after the earlier one (the file is opened "wb").
        now = time.time_ns()
        self._file = RecordWriter(os.path.join(
            logdir, f"events.out.tfevents.{now // 10**9}.{socket.gethostname()}."
                    f"{now % 10**9:09d}"))
        self._write(Event(file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard hides the events at and after it
            self._write(Event(step=purge_step, file_version="brain.Event:2"))  # as
            self._write(Event(step=purge_step, session_log=SessionLog(  # SummaryWriter
                status=SessionLog.START)))

    def _write(self, event) -> None:
        event.wall_time = time.time()
        self._file.write(event.SerializeToString())

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._write(self._event(summary=self._scalar(tag, value), step=step))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        try:
            self._file.flush()
        finally:  # closed even when the disk refuses the flush
            self._file.close()


def summary_line(s: dict) -> str:
    """e.g. 'lenet_mnist: test accuracy 98.60% (loss 0.0452, 1,000 examples) | 1250 steps,
    20 epochs | wall 2m31s | 3,310 train examples/s | workdir runs/lenet_mnist'"""
    ev = s.get("eval") or {}
    cut = ", SMOKE: part of the eval set" if s.get("eval_cut") else ""
    acc = (f"test accuracy {100 * ev['accuracy']:.2f}% (loss {ev['loss']:.4f}, "
           f"{_scored(ev)}{cut})" if ev else "no eval data")
    resumed = f" (resumed at step {s['start_step']})" if s.get("start_step") else ""
    epochs = f", {s['epochs']:.3g} epochs" if s.get("epochs") is not None else ""
    return (f"{s['name']}: {acc} | {s['step']} steps{epochs}{resumed} | "
            f"wall {format_duration(s['wall_seconds'])} | "
            f"{s['examples_per_sec']:,.0f} train examples/s | workdir {s['workdir']}")


def _scored(metrics: dict) -> str:
    """'1,000 examples', or '1,000 examples, 9,231 tokens' where a per-step loss scored
    (and its accuracy counts) the tokens."""
    examples, scored = metrics["examples"], metrics.get("scored", metrics["examples"])
    return f"{examples:,} examples" + (f", {scored:,} tokens" if scored != examples else "")


def plot_learning_curve(records: list[dict], png_path: str, title: str = "") -> None:
    """Train and eval loss (left) and accuracy (right) of metrics records against step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-"), ("eval", "o-")):
            points = [(r["step"], r[key]) for r in records if r["split"] == split and key in r]
            if points:
                ax.plot(*zip(*points), style, label=split, markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
