"""What every jaxnets command does the same way: absl flags, and bad input
reported as one line on stderr with exit status 2 (no traceback).

Exit statuses: 0 done; 1 the run stopped on its own finding (a NaN loss, an unreachable
dataset); 2 bad input (a flag, a config, a workdir of another run, a damaged
checkpoint); 74 a file could not be written (no space left on the device, a read-only
disk: jaxnets.train.checkpoint.WriteError, what was kept is said); 130 Ctrl-C."""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging

USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


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
        if not flags.FLAGS["verbosity"].present:  # orbax and TFDS log every file at INFO
            absl_logging.set_verbosity(absl_logging.WARNING)
        try:
            return main(argv)
        except ValueError as e:
            fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        except KeyboardInterrupt:  # Ctrl-C: what was saved has been said; no traceback
            sys.exit(INTERRUPTED)
        except OSError as e:  # an explained fault (WriteError, 74) carries its status
            status = getattr(e, "exit_status", None)  # (not imported: this stays light)
            if status is None:
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(status)

    # JAX logs at INFO that it found no TPU; that is noise for a CPU/GPU user.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    app.run(checked_main, flags_parser=parse_flags)
