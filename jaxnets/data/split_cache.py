"""A whole TFDS split as numpy arrays, kept beside the prepared dataset after its first read.

The sequence tasks (sequence_tasks.py) build their arrays from whole splits of TFDS
datasets (rt_chars from rt_sentences, digit_captions from mnist5k), and the text datasets
(text.py) tokenize whole splits. Reading a split needs TensorFlow, whose import alone
takes ~1.7 s of every start on this project's CPU, and TFDS, ~0.3 s more per split; the
second start loads `<prepared dataset>/jaxnets-<split>.npz` instead (the sequence tasks
without TensorFlow at all).

Texts (1-D arrays of bytes) are kept exactly and compactly: one byte buffer plus where
each text ends, not numpy's fixed-width bytes (padded to the longest, trailing NULs lost).

The file is found without TFDS: in `data_dir` (or TFDS's default, `$TFDS_DATA_DIR` or
~/tensorflow_datasets), `<name>/[<config>/]<version>/dataset_info.json` must exist for
exactly one version, and the file must be newer than it (a dataset prepared again is
read again).
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


def whole_split(name: str, split: str, data_dir: str | None, builder=None) -> Arrays:
    """Every feature of `split`, in its fixed order, as arrays (texts: object arrays of
    bytes); from the second time on from the kept file.

    `builder`: the prepared TFDS builder when the caller has one (else one is made only if
    the file is missing). The file is used only where that builder reads its data: not
    for a `tfds.testing.mock_data` builder, nor where several versions or configs are
    prepared; those are read every time.
    """
    if builder is not None and not _reads_from(builder, cache_path(name, split, data_dir)):
        return read_split(builder, split)

    def read():
        from jaxnets.data import public  # TensorFlow: only here
        return read_split(builder or public.prepared_builder(name, data_dir), split)
    return cached(name, split, data_dir, read)


def _reads_from(builder, path: str | None) -> bool:
    return path is not None and (os.path.realpath(os.fspath(builder.data_dir))
                                 == os.path.realpath(os.path.dirname(path)))


def read_split(builder, split) -> Arrays:
    """Every feature of `split` read with TFDS, uncached;
    texts come as object arrays of bytes."""
    from jaxnets.data import tfds_io  # pylint: disable=g-import-not-at-top
    ds = tfds_io.read(builder, split)
    blocks = list(ds.batch(4096).as_numpy_iterator())
    return {key: np.concatenate([block[key] for block in blocks]) if blocks
            else np.zeros((0, *spec.shape), spec.dtype.as_numpy_dtype)
            for key, spec in ds.element_spec.items()}


def cached(name: str, split: str, data_dir: str | None, read: Callable[[], Arrays]) -> Arrays:
    """The split's arrays from the cache file, or `read()` (TensorFlow), then kept."""
    path = cache_path(name, split, data_dir)
    if path is not None and _fresh(path):
        try:
            with np.load(path, allow_pickle=False) as f:
                return _unpack({key: f[key] for key in f.files})
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # unreadable: read the split again and replace the file
    arrays = read()
    _keep(cache_path(name, split, data_dir), arrays)  # prepared by now: the path exists
    return arrays


def cache_path(name: str, split: str, data_dir: str | None) -> str | None:
    """Where the split's file goes, or None unless exactly one prepared version exists
    (`<name>/<version>`, or `<name>/<config>/<version>` for a name without its config,
    e.g. imdb_reviews/plain_text/1.0.0)."""
    root = os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR")
                              or os.path.join("~", "tensorflow_datasets"))
    folder = os.path.join(root, *name.split("/"))
    infos = [info for pattern in ("*", os.path.join("*", "*"))
             for info in glob.glob(os.path.join(folder, pattern, "dataset_info.json"))]
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


_TEXT_BYTES, _TEXT_ENDS = ".text-bytes", ".text-ends"  # suffixes of a packed text array


def _storable(arrays: Arrays) -> Arrays | None:
    """The arrays with each 1-D array of bytes packed as a byte buffer and end offsets;
    None when some object array holds anything else (then the split is not kept)."""
    out = {}
    for key, value in arrays.items():
        if value.dtype == object:
            if value.ndim != 1 or not all(isinstance(v, bytes) for v in value):
                return None
            out[key + _TEXT_BYTES] = np.frombuffer(b"".join(value), np.uint8)
            out[key + _TEXT_ENDS] = np.cumsum([len(v) for v in value], dtype=np.int64)
        else:
            out[key] = value
    return out


def _unpack(stored: Arrays) -> Arrays:
    """`_storable` undone: packed texts become object arrays of bytes again."""
    out = {}
    for key, value in stored.items():
        if key.endswith(_TEXT_ENDS):
            continue
        if key.endswith(_TEXT_BYTES):
            key = key[:-len(_TEXT_BYTES)]
            buffer, ends = value.tobytes(), stored[key + _TEXT_ENDS]
            starts = np.concatenate([[0], ends[:-1]])
            value = np.empty(len(ends), object)
            value[:] = [buffer[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
        elif value.dtype.kind == "S":  # an older file's fixed-width texts (kept exact)
            value = value.astype(object)
        out[key] = value
    return out
