"""Sequence data for the RNN modes that no package ships real data for.

  number_words    sequence-to-sequence, CONSTRUCTED: "1234" -> "one thousand two
                  hundred thirty four", every number 0..9999, a fixed held-out 10%.
  digit_captions  one-to-many on REAL images: strips of 1-4 real MNIST digits
                  captioned with their number words ("seven three"); the strips are
                  constructed, the digits and their labels are human-made.
  char_lm         many-to-many on REAL text: characters of the Rotten Tomatoes
                  sentences, predicting the next character at every step.
  digit_video     many-to-many, synced, on REAL images: clips of moving digits, a
                  class per frame that sometimes needs memory (digit_video.py).

Everything here is numpy (no TensorFlow), deterministic in its seed, and
returns dicts of arrays for `jaxnets.data.arrays.ArrayData`. Decoder batches
share one layout: `tokens` (BOS then the output, teacher forcing), `lengths`,
`targets` (the output then EOS) and `target_mask` (1 on real steps).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import numpy as np

from jaxnets.data import digit_video, split_cache
from jaxnets.data.tokenizer import tokenize

PAD, BOS, EOS = 0, 1, 2
UNK = "<unk>"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
               "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
          "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
         "ninety")


@dataclasses.dataclass(frozen=True)
class Symbols:
    """Ids of a task's symbols: 0 PAD, 1 BOS, 2 EOS, then `symbols` in order.

    `unit` says how text splits into symbols: "words" (the jaxnets tokenizer)
    or "chars". A symbol set that holds UNK encodes unknown words as UNK;
    otherwise an unknown symbol is an error.
    """

    symbols: tuple[str, ...]
    unit: str = "words"

    @property
    def size(self) -> int:
        return len(self.symbols) + 3

    def __len__(self) -> int:  # the vocabulary size, as for a Vocabulary
        return self.size

    def ids(self, sequence) -> list[int]:
        index = {s: i + 3 for i, s in enumerate(self.symbols)}
        unknown = index.get(UNK)
        try:
            return [index[s] if unknown is None else index.get(s, unknown) for s in sequence]
        except KeyError as e:
            raise ValueError(f"symbol {e.args[0]!r} is not in this task's vocabulary "
                             f"({len(self.symbols)} symbols)") from None

    def encode(self, text: str) -> list[int]:
        """Text -> ids, split into characters or words as `unit` says."""
        return self.ids(text if self.unit == "chars" else tokenize(text))

    def decode(self, ids, sep: str | None = None) -> str:
        """Ids up to the first EOS -> text; PAD and BOS are dropped."""
        out = []
        for i in map(int, ids):
            if i == EOS:
                break
            if i > EOS:
                out.append(self.symbols[i - 3])
        return ("" if self.unit == "chars" else " ").join(out) if sep is None else sep.join(out)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"symbols": list(self.symbols), "unit": self.unit}, f,
                      ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Symbols":
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        return cls(tuple(saved["symbols"]), saved.get("unit", "words"))


def word_symbols(texts, max_size: int) -> Symbols:
    """UNK and the most frequent words of the training texts (ties alphabetical)."""
    counts = collections.Counter(w for t in texts for w in tokenize(t))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[: max_size - 4]
    return Symbols((UNK, *ranked))


def number_to_words(n: int) -> list[str]:
    """English words of 0 <= n <= 9999: 1234 -> one thousand two hundred thirty four."""
    if not 0 <= n <= 9999:
        raise ValueError(f"number_to_words covers 0..9999, got {n}")
    if n == 0:
        return ["zero"]
    words = []
    thousands, rest = divmod(n, 1000)
    hundreds, rest = divmod(rest, 100)
    if thousands:
        words += [DIGIT_WORDS[thousands], "thousand"]
    if hundreds:
        words += [DIGIT_WORDS[hundreds], "hundred"]
    if rest >= 20:
        words.append(_TENS[rest // 10])
        rest %= 10
    if rest >= 10:
        words.append(_TEENS[rest - 10])
    elif rest:
        words.append(DIGIT_WORDS[rest])
    return words


NUMBER_SOURCE = Symbols(tuple("0123456789"), unit="chars")
NUMBER_TARGET = Symbols(tuple(sorted(
    set(DIGIT_WORDS) | set(_TEENS) | set(_TENS[2:]) | {"hundred", "thousand"})))
CAPTION_WORDS = Symbols(DIGIT_WORDS)


def decoder_arrays(outputs: list[list[int]], max_length: int) -> dict[str, np.ndarray]:
    """Teacher-forcing arrays for id sequences (each at most max_length - 1 long)."""
    n = len(outputs)
    tokens = np.zeros((n, max_length), np.int32)
    targets = np.zeros((n, max_length), np.int32)
    lengths = np.zeros((n,), np.int32)
    for i, seq in enumerate(outputs):
        seq = list(seq)[: max_length - 1]
        tokens[i, : len(seq) + 1] = [BOS] + seq
        targets[i, : len(seq) + 1] = seq + [EOS]
        lengths[i] = len(seq) + 1
    target_mask = (np.arange(max_length)[None, :] < lengths[:, None]).astype(np.float32)
    return {"tokens": tokens, "lengths": lengths, "targets": targets,
            "target_mask": target_mask}


def number_words(test_fraction: float = 0.1, seed: int = 0):
    """(train, test) arrays translating digit strings to English number words.

    CONSTRUCTED task. Each of 0..9999 appears once; a fixed random 10% (by
    `seed`) is held out, so test numbers are never seen in training.
    """
    numbers = np.random.default_rng(seed).permutation(10_000)
    n_test = int(round(len(numbers) * test_fraction))

    def arrays(ns):
        sources = [NUMBER_SOURCE.ids(str(n)) for n in ns]
        source = np.zeros((len(ns), 4), np.int32)
        for i, s in enumerate(sources):
            source[i, : len(s)] = s
        out = decoder_arrays([NUMBER_TARGET.ids(number_to_words(n)) for n in ns], 8)
        return {"source": source,
                "source_lengths": np.array([len(s) for s in sources], np.int32),
                "number": np.asarray(ns, np.int32), **out}

    return arrays(numbers[n_test:]), arrays(numbers[:n_test])


def digit_captions(images: np.ndarray, labels: np.ndarray, count: int, seed: int,
                   max_digits: int = 4) -> dict[str, np.ndarray]:
    """`count` strips of 1..max_digits digits side by side, captioned in words.

    Args:
      images: <uint8 or float>[n, 28, 28, 1] real digit images.
      labels: <int>[n] their classes 0..9.
      count: strips to make; seed fixes which digits go into each.

    Returns arrays: `image` <float32>[count, 28, 28*max_digits, 1] in [0, 1],
    zero on the right of short strips, plus the decoder arrays of the caption.
    """
    rng = np.random.default_rng(seed)
    height, width = images.shape[1:3]
    strips = np.zeros((count, height, width * max_digits, 1), np.float32)
    captions = []
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    for i in range(count):
        picks = rng.integers(0, len(images), size=rng.integers(1, max_digits + 1))
        for j, k in enumerate(picks):
            strips[i, :, j * width:(j + 1) * width] = images[k].reshape(height, width, 1) / scale
        captions.append(CAPTION_WORDS.ids(DIGIT_WORDS[int(labels[k])] for k in picks))
    return {"image": strips, **decoder_arrays(captions, max_digits + 2)}


def char_symbols(texts) -> Symbols:
    """The characters of the training texts, sorted (the LM's vocabulary)."""
    return Symbols(tuple(sorted({c for t in texts for c in t})), unit="chars")


def char_lm(texts, symbols: Symbols, max_length: int = 256) -> dict[str, np.ndarray]:
    """Next-character arrays for `texts`; characters unknown to `symbols` are dropped."""
    known = set(symbols.symbols)
    sequences = [symbols.ids(c for c in t if c in known) for t in texts]
    return decoder_arrays(sequences, max_length)


# -- loading by name (jaxnets.data.get_dataset) --------------------------------

CAPTION_STRIPS = {"train": 12_000, "test": 1_000}  # strips made from each split's digits
CAPTION_SHAPE = (28, 28 * 4, 1)


def _number_words(data_dir):
    train, test = number_words()
    return train, test, NUMBER_TARGET, {"input_shape": (4,), "source_vocab": NUMBER_SOURCE}


def _digit_captions(data_dir):
    train, test = (split_cache.whole_split("mnist5k", split, data_dir)
                   for split in ("train", "test"))
    return (digit_captions(train["image"], train["label"], CAPTION_STRIPS["train"], seed=0),
            digit_captions(test["image"], test["label"], CAPTION_STRIPS["test"], seed=1),
            CAPTION_WORDS, {"input_shape": CAPTION_SHAPE})


def _rt_chars(data_dir, max_length=256):
    texts = {split: [t.decode("utf-8")
                     for t in split_cache.whole_split("rt_sentences", split, data_dir)["text"]]
             for split in ("train", "test")}
    symbols = char_symbols(texts["train"])
    return (char_lm(texts["train"], symbols, max_length),
            char_lm(texts["test"], symbols, max_length), symbols,
            {"input_shape": (max_length,)})


def translation_arrays(sources, targets, source_symbols, target_symbols, max_length):
    """Seq2seq arrays for parallel texts; both sides cut to max_length words."""
    encoded = [source_symbols.encode(t)[:max_length] for t in sources]
    source = np.zeros((len(encoded), max_length), np.int32)
    for i, ids in enumerate(encoded):
        source[i, :len(ids)] = ids
    out = decoder_arrays([target_symbols.encode(t) for t in targets], max_length + 1)
    return {"source": source, "source_lengths": np.array([max(len(e), 1) for e in encoded],
                                                           np.int32), **out}


def _tfds_translation(name, data_dir, max_length=40, vocab_size=8000):
    """A public TFDS translation dataset (e.g. ted_hrlr_translate/pt_to_en), word level.

    Vocabularies come from the train split only; the eval split is the catalog's.
    """
    from jaxnets.data import catalog, public
    spec = catalog.spec_for(name)
    builder = public.prepared_builder(name, data_dir)  # fails fast when offline
    source_key, target_key = builder.info.supervised_keys
    text = lambda rows, key: [r.decode("utf-8") for r in rows[key]]  # noqa: E731
    train = split_cache.whole_split(name, "train", data_dir, builder)
    test = split_cache.whole_split(name, spec.eval_split, data_dir, builder)
    source_symbols = word_symbols(text(train, source_key), vocab_size)
    target_symbols = word_symbols(text(train, target_key), vocab_size)
    make = lambda rows: translation_arrays(  # noqa: E731
        text(rows, source_key), text(rows, target_key), source_symbols, target_symbols,
        max_length)
    return make(train), make(test), target_symbols, {
        "input_shape": (max_length,), "source_vocab": source_symbols}


TASKS = {"number_words": _number_words, "digit_captions": _digit_captions,
         "rt_chars": _rt_chars, "digit_video": digit_video.task}
FIXED_LENGTH = ("number_words", "digit_captions", "digit_video")
TRANSLATION_PREFIXES = ("ted_hrlr_translate",)


def load(name: str, *, batch_size: int, eval_batch_size: int | None = None, seed: int = 0,
         data_dir: str | None = None, max_length: int | None = None,
         vocab_size: int | None = None, process_index: int = 0, process_count: int = 1):
    """The task `name` as a `jaxnets.data.arrays.ArrayData` (see get_dataset).

    Its `vocab` is the output `Symbols` (save it with the run for prediction).
    `max_length` applies to rt_chars and TFDS translation, `vocab_size` to the latter;
    given where it cannot apply, it is an error, not ignored.
    """
    from jaxnets.data.arrays import ArrayData
    translation = name.startswith(TRANSLATION_PREFIXES)
    if max_length and name in FIXED_LENGTH:
        raise ValueError(f"max_length does not apply to {name}: its sequences have a fixed "
                         "length")
    if vocab_size and not translation:
        raise ValueError(f"vocab_size does not apply to {name}: its vocabulary is fixed")
    options = {"max_length": max_length} if max_length else {}
    if vocab_size:
        options["vocab_size"] = vocab_size
    if translation:
        train, test, symbols, meta = _tfds_translation(name, data_dir, **options)
    else:
        train, test, symbols, meta = TASKS[name](data_dir, **options)
    return ArrayData(train, test, batch_size=batch_size, eval_batch_size=eval_batch_size,
                     seed=seed, process_index=process_index, process_count=process_count,
                     name=name, kind="sequence", vocab=symbols, **meta)
