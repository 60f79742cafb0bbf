"""The one place jaxnets.data imports TensorFlow and TFDS: lazily, CPU only, quiet.

Both come with the `data` extra (`pip install "jaxnets[data]"`); where either is not
installed, the first dataset that needs them raises DataExtraMissingError, one line that
names the extra (a command prints it and exits with status 2).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import sys
import tempfile

from jaxnets.cli import verbose
from jaxnets.data.catalog import DatasetUnavailableError
from jaxnets.import_guard import without_module

DATA_EXTRA = 'pip install "jaxnets[data]"'
_DATA_PACKAGES = ("tensorflow", "tensorflow_datasets")  # what the data extra installs
_configured = False


class DataExtraMissingError(DatasetUnavailableError):
    """TensorFlow or TFDS, which read every TFDS dataset, is not installed."""


@contextlib.contextmanager
def data_extra_needed(what: str):
    """A missing TensorFlow or TFDS inside the block -> DataExtraMissingError: `what` needs
    them, and the command that installs them. Any other import error (a broken install)
    keeps its own traceback."""
    try:
        yield
    except ModuleNotFoundError as e:
        if e.name not in _DATA_PACKAGES:
            raise
        raise DataExtraMissingError(f"{what} needs TensorFlow and TFDS ({e.name} is not "
                                    f"installed): install them with {DATA_EXTRA}") from None


def import_tfds(what: str = "reading a TFDS dataset"):
    """Imports TFDS (~0.9 s), having checked that TensorFlow is installed too (TFDS imports
    it only when it reads: a missing one is said now, not in the middle of a read).

    Raises:
      DataExtraMissingError: TensorFlow or TFDS is not installed; `what` names the use.
    """
    with data_extra_needed(what):
        if importlib.util.find_spec("tensorflow") is None:  # looks, does not import
            raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
        import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return tfds


# What TF's C++ libraries print while they load, before absl's logging is set up, at any
# TF_CPP_MIN_LOG_LEVEL (TF 2.21): absl's preamble and INFO/WARNING records
# ("I0000 00:00:1796533253.349947    9547 port.cc:153] oneDNN custom operations are on...").
_STARTUP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR$|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] ")


def import_tf():
    """Imports TensorFlow (~2 s, ~650 MB the first time) with its GPUs hidden, without Keras
    (import_guard.py); DataExtraMissingError where it is not installed.

    TF only runs tf.data here; if it saw the GPUs it would grab their memory and compete
    with JAX, so it is told they do not exist before it touches them. Unless verbose
    (jaxnets.cli), TF's C++ INFO and WARNING lines are hidden: those it prints while it
    loads by `startup_lines_hidden`, later ones by TF_CPP_MIN_LOG_LEVEL=2 (errors stay).
    """
    global _configured
    quiet = not verbose()
    _set_cpp_log_level(quiet)
    hidden = startup_lines_hidden() if quiet and "tensorflow" not in sys.modules else (
        contextlib.nullcontext())
    with data_extra_needed("the tf.data input pipeline"), without_module("keras"), hidden:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if not _configured:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # TF already initialized its devices elsewhere
            if tf.config.list_physical_devices("GPU"):
                logging.warning(
                    "TensorFlow was initialized with GPUs visible before jaxnets.data could "
                    "hide them, so it may take GPU memory from JAX: call "
                    "tf.config.set_visible_devices([], 'GPU') before any other TF use")
        _configured = True
    return tf


def _set_cpp_log_level(quiet: bool) -> None:
    """Quiet: TF's C++ logs errors only (2), or less if asked (3); JAX's import has set 1
    already, so a lower level is raised, not kept. Verbose: 1, or what was set."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "")
    if not quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    elif not level.isdigit() or int(level) < 2:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"


@contextlib.contextmanager
def startup_lines_hidden():
    """File descriptor 2 goes to a temporary file for the block (C++ code writes there, not
    to sys.stderr); afterwards what it caught is written to stderr without TF's start-up
    lines, or all of it if the block raised. Other output of the block is only delayed."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a daemon): nothing would be printed anyway
        yield
        return
    failed = True
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode("utf-8", errors="replace")
            sys.stderr.write(text if failed else without_startup_lines(text))
            sys.stderr.flush()


def without_startup_lines(text: str) -> str:
    """`text` less the lines TF's C++ libraries print while they load (INFO, WARNING)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not _STARTUP_LINE.match(line))
