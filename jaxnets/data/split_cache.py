"""A whole TFDS split as numpy arrays, kept beside the prepared dataset after its first read.

The sequence tasks (sequence_tasks.py) build their arrays from whole splits of TFDS
datasets (rt_chars from rt_sentences, digit_captions from mnist5k). Reading a split needs
TensorFlow, whose import alone takes ~2.8 s of every start on this project's CPU; the
second start loads `<prepared dataset>/jaxnets-<split>.npz` instead, without TensorFlow.

The file is found without TFDS: in `data_dir` (or TFDS's default, `$TFDS_DATA_DIR` or
~/tensorflow_datasets), `<name>/<version>/dataset_info.json` must exist for exactly one
version, and the file must be newer than it (a dataset prepared again is read again).
It is written atomically (a temporary file renamed), so an interrupted write never leaves
a broken cache; a directory that cannot be written to just goes without one.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import zipfile
from collections.abc import Callable

import numpy as np

Arrays = dict[str, np.ndarray]


def cached(name: str, split: str, data_dir: str | None, read: Callable[[], Arrays]) -> Arrays:
    """The split's arrays from the cache file, or `read()` (TensorFlow), then kept."""
    path = cache_path(name, split, data_dir)
    if path is not None and _fresh(path):
        try:
            with np.load(path, allow_pickle=False) as f:
                return {key: f[key] for key in f.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # unreadable: read the split again and replace the file
    arrays = read()
    _keep(cache_path(name, split, data_dir), arrays)  # prepared by now: the path exists
    return arrays


def cache_path(name: str, split: str, data_dir: str | None) -> str | None:
    """Where the split's file goes, or None unless exactly one prepared version exists."""
    root = os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR")
                              or os.path.join("~", "tensorflow_datasets"))
    infos = glob.glob(os.path.join(root, *name.split("/"), "*", "dataset_info.json"))
    if len(infos) != 1:
        return None
    return os.path.join(os.path.dirname(infos[0]),
                        f"jaxnets-{re.sub(r'[^A-Za-z0-9_.-]', '_', split)}.npz")


def _fresh(path: str) -> bool:
    info = os.path.join(os.path.dirname(path), "dataset_info.json")
    return os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(info)


def _keep(path: str | None, arrays: Arrays) -> None:
    storable = _storable(arrays)
    if path is None or storable is None:
        return
    temporary = None
    try:
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), suffix=".tmp",
                                         delete=False) as f:
            temporary = f.name
            np.savez(f, **storable)
        os.chmod(temporary, 0o644)  # readable like the prepared files beside it
        os.replace(temporary, path)
    except OSError:  # e.g. a read-only data directory: no cache, nothing lost
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def _storable(arrays: Arrays) -> Arrays | None:
    """The arrays with texts (object arrays of bytes) as fixed-width bytes, or None when
    that would change a value (then the split is not kept)."""
    out = {}
    for key, value in arrays.items():
        if value.dtype == object:
            try:
                converted = value.astype(bytes)
            except (TypeError, ValueError):
                return None
            if converted.tolist() != value.tolist():  # e.g. trailing NUL bytes
                return None
            value = converted
        out[key] = value
    return out
