"""What every jaxnets command does the same way: absl flags, and bad input
reported as one line on stderr with exit status 2 (no traceback)."""

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

    # JAX logs at INFO that it found no TPU; that is noise for a CPU/GPU user.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    app.run(checked_main, flags_parser=parse_flags)
