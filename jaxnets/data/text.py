"""Text in tf.data: tokenized once on the host with the run's vocabulary, kept in RAM.

The vocabulary is built from the full train split only (every process builds the same one)
and encodes text in pure Python (`Vocabulary.encode`), so training, evaluation and later
prediction share exactly one tokenizer. Sequences are truncated to `max_length` and
right-padded with PAD = 0; `lengths` holds the real lengths. With `length_buckets`, each
batch is cut to the smallest bucket that holds its longest sequence (fewer wasted steps,
one compiled shape per bucket).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from jaxnets.data import catalog, split_cache, tfds_io
from jaxnets.data.contract import Batch
from jaxnets.data.tf_setup import import_tf
from jaxnets.data.tokenizer import Vocabulary, build_vocabulary

tf = import_tf()  # this module is imported only when a text dataset is built

DEFAULT_VOCAB_SIZE = 20_000  # including PAD and OOV
MAX_LENGTH_CAP = 256         # default max_length: the longest train text, capped here


def make_source(builder, spec: catalog.DatasetSpec, train: tfds_io.Shard,
                evaluation: tfds_io.Shard, *, data_dir: str | None = None,
                max_length: int | None = None, vocab_size: int | None = None,
                vocab: Vocabulary | None = None,
                length_buckets: Sequence[int] | None = None) -> tfds_io.Source:
    """Encoded, padded text of this process's shards, in RAM, plus the batch finisher.

    The vocabulary and the default max_length come from the whole train split, so every
    process has the same ones."""
    texts, labels = read_texts(builder, spec, train.split, data_dir)
    vocab = _vocabulary(texts, vocab, vocab_size)
    encoded = [vocab.encode(t) for t in texts]
    if max_length is None:
        max_length = min(max(map(len, encoded), default=1), MAX_LENGTH_CAP)
    tokens, lengths = pad_sequences(encoded[train.rows], max_length)
    rows = {"tokens": tokens, "lengths": lengths, "label": labels[train.rows]}
    eval_texts, eval_labels = read_texts(builder, spec, evaluation.split, data_dir)
    eval_texts, eval_labels = eval_texts[evaluation.rows], eval_labels[evaluation.rows]
    eval_tokens, eval_lengths = pad_sequences([vocab.encode(t) for t in eval_texts],
                                              max_length)
    return tfds_io.Source(
        train=functools.cache(lambda: {k: tf.constant(v) for k, v in rows.items()}),
        eval=functools.cache(lambda: tf.data.Dataset.from_tensor_slices(
            {"tokens": eval_tokens, "lengths": eval_lengths, "label": eval_labels})),
        num_train=len(tokens), num_eval=len(eval_tokens), finish=finish,
        input_shape=(max_length,),
        num_classes=builder.info.features["label"].num_classes,
        post=functools.partial(trim_to_bucket, widths=bucket_widths(length_buckets,
                                                                    max_length)),
        vocab=vocab, eval_texts=eval_texts)


def read_texts(builder, spec: catalog.DatasetSpec, split: str,
               data_dir: str | None = None) -> tuple[list[str], np.ndarray]:
    """(texts, int32 labels) of the whole `split`, in the split's fixed order; kept as numpy
    beside the prepared dataset after its first read (split_cache.py)."""
    arrays = split_cache.whole_split(spec.name, split, data_dir, builder)
    texts = [t.decode("utf-8") for t in arrays[spec.input_key]]
    labels = arrays["label"].astype(np.int32)
    if (labels < 0).any():
        raise ValueError(f"{spec.name} {split} has hidden labels (-1) on {(labels < 0).sum()} "
                         "examples: evaluate on a labelled split, e.g. split_eval='validation'")
    return texts, labels


def _vocabulary(texts: list[str], vocab: Vocabulary | None,
                vocab_size: int | None) -> Vocabulary:
    if vocab is None:
        return build_vocabulary(texts, vocab_size or DEFAULT_VOCAB_SIZE)
    if vocab_size is not None and len(vocab) > vocab_size:  # a cap, so smaller is fine
        raise ValueError(f"the given vocab has {len(vocab)} tokens, more than vocab_size="
                         f"{vocab_size}: raise vocab_size or drop it (the vocab decides)")
    return vocab


def pad_sequences(sequences: list[list[int]], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists -> (tokens int32[N, max_length] right-padded with 0, lengths int32[N])."""
    tokens = np.zeros((len(sequences), max_length), np.int32)
    lengths = np.zeros(len(sequences), np.int32)
    for row, ids in enumerate(sequences):
        ids = ids[:max_length]  # truncation keeps the beginning
        tokens[row, :len(ids)] = ids
        lengths[row] = len(ids)
    return tokens, lengths


def bucket_widths(length_buckets: Sequence[int] | None, max_length: int) -> tuple[int, ...]:
    """Sorted widths ending at max_length; just (max_length,) when not bucketing."""
    widths = sorted({int(w) for w in (length_buckets or ())})
    if widths and (widths[0] < 1 or widths[-1] > max_length):
        raise ValueError(f"length_buckets {list(length_buckets)} must lie in 1..max_length="
                         f"{max_length}")
    return tuple(w for w in widths if w < max_length) + (max_length,)


def trim_to_bucket(batch: Batch, widths: tuple[int, ...]) -> Batch:
    """Cuts `tokens` [B, max_length] to [B, w], w the smallest width >= the longest row."""
    longest = int(batch["lengths"].max(initial=0))
    width = next(w for w in widths if w >= longest)
    if width == batch["tokens"].shape[1]:
        return batch
    return {**batch, "tokens": batch["tokens"][:, :width]}


def finish(batch):
    """Adds mask = 1 (real rows) to a text batch; tokens, lengths, label are int32 already."""
    return {**batch, "mask": tf.ones_like(batch["label"], tf.float32)}
