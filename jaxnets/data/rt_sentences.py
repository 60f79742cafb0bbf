"""TFDS builder `rt_sentences`: Rotten Tomatoes sentences rated by people, from PyPI.

The vaderSentiment 3.3.2 sdist ships the ground truth of Hutto & Gilbert (ICWSM 2014):
10,605 sentences of movie reviews (the Pang & Lee sentence-polarity text), each rated by
>= 20 people on -4..+4. The file is tab-separated `id, mean rating, text` with CRLF lines.

Examples: text (str), label (0 negative: mean < 0, 1 positive: mean > 0; the 37 sentences
with mean exactly 0 are dropped), rating (float32 mean), id (int32, line id in the source).
Splits: 1 in 10 sentences (by sha256 of the id) in `test`, the rest in `train`; the same
on every machine. Measured sizes: experiments/datasets.md.

    import tensorflow_datasets as tfds
    from jaxnets.data import rt_sentences  # noqa: F401  registers the builder with TFDS
    ds = tfds.load("rt_sentences", split="train")  # first use: pip download + prepare
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow_datasets as tfds

from jaxnets.data import pypi_source

SOURCE = pypi_source.PypiSource(
    package="vaderSentiment", version="3.3.2", sdist=True,
    filename="vaderSentiment-3.3.2.tar.gz",
    sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    members=("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
             "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"),
    data_sha256="c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
)
TEST_ONE_IN = 10  # 1 in 10 ids goes to test


def parse_ground_truth(raw: bytes) -> list[tuple[int, float, str]]:
    """`id<TAB>mean<TAB>text` lines (CRLF or LF) -> [(id, mean rating, text)]."""
    rows = []
    for number, line in enumerate(raw.decode("utf-8").split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        try:
            rows.append((int(fields[0]), float(fields[1]), fields[2].strip()))
        except (IndexError, ValueError) as e:
            raise ValueError(f"{SOURCE.data_name} line {number}: expected 'id<TAB>mean rating"
                             f"<TAB>text', got {line[:80]!r} ({e})") from e
    return rows


def split_of(sentence_id: int) -> str:
    """'test' for 1 in TEST_ONE_IN ids, chosen by sha256 so every machine agrees."""
    digest = hashlib.sha256(str(sentence_id).encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_ONE_IN == 0 else "train"


def label_of(rating: float) -> int | None:
    """1 if people rated it positive on average, 0 if negative, None (dropped) if exactly 0."""
    return None if rating == 0 else int(rating > 0)


class RtSentences(tfds.core.GeneratorBasedBuilder):
    """Rotten Tomatoes sentences with human sentiment ratings (vaderSentiment 3.3.2)."""

    name = "rt_sentences"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "From vaderSentiment 3.3.2; 90/10 split by sha256 of the id."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=["negative", "positive"]),
                "rating": tfds.features.Scalar(dtype=np.float32),
                "id": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("text", "label"),
            homepage="https://github.com/cjhutto/vaderSentiment",
            citation="Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based "
                     "Model for Sentiment Analysis of Social Media Text. ICWSM-14.",
        )

    def _split_generators(self, dl_manager):
        raw = pypi_source.read_data_file(SOURCE, dl_manager.download_dir,
                                         getattr(dl_manager, "_manual_dir", None))
        rows = parse_ground_truth(raw)
        pypi_source.say(f"rt_sentences: parsed {len(rows):,} rated sentences")
        return {split: self._generate_examples(rows, split) for split in ("train", "test")}

    def _generate_examples(self, rows, split):
        for sentence_id, rating, text in rows:
            label = label_of(rating)
            if label is not None and split_of(sentence_id) == split:
                yield sentence_id, {"text": text, "label": label, "rating": rating,
                                    "id": sentence_id}
