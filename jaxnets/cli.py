"""What every jaxnets command does the same way: absl flags, bad input reported as one
line on stderr with exit status 2 (no traceback), and a quiet terminal.

Exit statuses: 0 done; 1 the run stopped on its own finding (a NaN loss, another process
of the run lost); 2 bad input (a flag, a config, a workdir of another run, a damaged
checkpoint, a dataset not to be had from here); 74 a file could not be written (no space
left on the device, a read-only disk: jaxnets.train.checkpoint.WriteError, what was kept
is said); 130 Ctrl-C.

Quiet: a command prints jaxnets' own lines only. The libraries' start-up lines and
warnings (TensorFlow's C++ lines at import, TFDS's and orbax's absl warnings, TFDS's
progress bars when stderr is not a terminal) are hidden; their errors are not.
JAXNETS_VERBOSE=1 (or absl's --verbosity=N on a command) brings them back.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
VERBOSE_ENV = "JAXNETS_VERBOSE"
LIBRARY_LOGGERS = ("absl", "tensorflow")  # TFDS and orbax log through absl's logger


def verbose() -> bool:
    """Whether the libraries' own logs are wanted ($JAXNETS_VERBOSE set and not 0)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_library_logs() -> None:
    """Drops the libraries' Python log records below ERROR (jaxnets logs to the root logger).

    A filter on the loggers, not their level: absl resets the level of its logger whenever
    its verbosity changes."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).addFilter(_errors_only)


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def fail(message: str) -> None:
    """Print `message` as one line and exit with the usage-error status."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def run(main, flags_parser=None) -> None:
    """`absl.app.run(main)`, with flag errors and ValueErrors from `main` as
    one-line usage errors.

    flags_parser: `argv -> main's argv`, in place of `flags.FLAGS(argv)` (run.py spells
    out its short forms first); the ValueErrors it raises are usage errors too.
    """

    def parse_flags(argv):
        try:
            return (flags_parser or flags.FLAGS)(argv)
        except (flags.Error, ValueError) as e:
            fail(str(e))

    def checked_main(argv):
        if flags.FLAGS["verbosity"].present:
            os.environ[VERBOSE_ENV] = "1"  # the data layer reads it: TensorFlow's start-up
        else:  # orbax and TFDS log every file at INFO
            absl_logging.set_verbosity(absl_logging.WARNING)
        if not verbose():
            quiet_library_logs()
        try:
            return main(argv)
        except ValueError as e:
            fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        except KeyboardInterrupt:  # Ctrl-C: what was saved has been said; no traceback
            sys.exit(INTERRUPTED)
        except (OSError, RuntimeError) as e:  # an explained fault carries its status:
            status = getattr(e, "exit_status", None)  # WriteError 74, DatasetUnavailableError 2
            if status is None:
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(status)

    # JAX logs at INFO that it found no TPU; that is noise for a CPU/GPU user.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    app.run(checked_main, flags_parser=parse_flags)
