"""A workdir's lock: one command at a time (flock on a file beside the run's files).

`take` returns None when the lock is held for the caller until `stack` closes, or the
holder's pid (-1 when unknown) when another command has it. A lock file the caller made is
removed when it lets go, so a refused or finished command leaves a workdir's files as they
were; a lock taken on a file its holder removed meanwhile is therefore taken again.
"""

from __future__ import annotations

import contextlib
import logging
import os

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None


def take(path: str, stack: contextlib.ExitStack) -> int | None:
    """Takes the lock; returns the holder's pid (-1 unknown) when another run has it.

    A lock file this command created is removed when it lets go (a refused or finished
    command leaves the workdir's files as they were); so a lock taken on a file that
    its holder removed meanwhile is let go and taken again on the new file."""
    if fcntl is None:
        return None
    while True:
        existed = os.path.exists(path)
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            f.close()
            return int(text) if text.isdigit() else -1
        except OSError as e:  # a filesystem without locks (some NFS, FUSE): run unlocked
            f.close()
            logging.warning("cannot lock %s (%s): a second run there would not be "
                            "refused", os.path.dirname(path), e.strerror)
            return None
        if _names(path, f):
            break
        f.close()  # its holder removed it as we opened it
    stack.callback(f.close)
    stack.callback(fcntl.flock, f, fcntl.LOCK_UN)
    # The pid is for the holder's lifetime only: removed (or emptied) before unlocking.
    if existed:
        stack.callback(_truncate, f)
    else:
        stack.callback(_unlink, path)
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return None


def _names(path: str, f) -> bool:
    """Whether `path` still names the open file `f`."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(f.fileno()))
    except FileNotFoundError:
        return False


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _truncate(f) -> None:
    f.seek(0)
    f.truncate()
