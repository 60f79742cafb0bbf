"""Reading TFDS splits, and `Source`: what images.py / text.py hand to the tf.data pipeline.

Shared by pipeline.py, images.py, text.py, split_cache.py and __main__.py, and importing
none of them, so the data modules import each other without a circle. TensorFlow and
TFDS are imported inside the functions (importing this module is cheap).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from jaxnets.data.contract import Batch, shard_rows
from jaxnets.data.tokenizer import Vocabulary


@dataclasses.dataclass(frozen=True)
class Source:
    """A kind's preprocessed data for `pipeline.Dataset`: this process's rows of each split.

    `train()` returns the train rows as one tensor per key ({key: tf.Tensor[num_train,
    ...]}, in the split's order), read on the first call and kept in RAM: the pipeline
    gathers each batch's rows from them by index (contract.epoch_batches). `eval()` is a
    tf.data.Dataset of the eval rows in order, from RAM (read whole on the first call).
    """
    train: Callable[[], dict]      # () -> {key: tf.Tensor[num_train, ...]}; read once
    eval: Callable[[], Any]        # () -> tf.data.Dataset of this process's eval rows
    num_train: int                 # rows in train()
    num_eval: int                  # rows in `eval`
    finish: Callable               # tf: batch -> batch with the final keys, dtypes and mask
    input_shape: tuple
    num_classes: int
    augment: Callable | None = None   # tf: (batch, seed int64[2]) -> batch; stateless
    fit: Callable | None = None       # tf: batch -> batch, first thing after batching
    post: Callable[[Batch], Batch] = lambda batch: batch  # numpy, after batching
    vocab: Vocabulary | None = None
    eval_texts: list[str] | None = None


@dataclasses.dataclass(frozen=True)
class Shard:
    """This process's rows of a TFDS split (contract.shard_rows)."""
    split: str     # a TFDS split string, e.g. "train" or "train[:80%]"
    rows: slice    # this process's rows of it
    total: int     # rows of the whole split

    @classmethod
    def of(cls, builder, split: str, process_index: int, process_count: int) -> "Shard":
        total = count_examples(builder, split)
        return cls(split, shard_rows(total, process_index, process_count), total)

    @property
    def size(self) -> int:
        return self.rows.stop - self.rows.start


def read(builder, split, decoders=None):
    """The examples of `split` in a fixed order (no file shuffling, no TFDS auto-cache)."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                              read_config=tfds.ReadConfig(try_autocache=False))


def read_shard(builder, shard: Shard):
    """The examples of `shard`, in the split's order.

    A named split is sliced by TFDS, which then reads only the shard's rows; a sub-split
    string (e.g. "train[:80%]") is read from its start, the rows before the shard skipped.
    """
    start, stop = shard.rows.start, shard.rows.stop
    if (start, stop) == (0, shard.total):
        return read(builder, shard.split)
    if shard.split in builder.info.splits:
        return read(builder, f"{shard.split}[{start}:{stop}]")
    return read(builder, shard.split).skip(start).take(stop - start)


def count_examples(builder, split) -> int:
    """Rows of `split`: recorded for a named split, counted for a sub-split."""
    if isinstance(split, str) and split in builder.info.splits:
        return builder.info.splits[split].num_examples
    count = int(read(builder, split).cardinality())
    return count if count >= 0 else builder.info.splits[split].num_examples


def tensors_once(ds) -> Callable[[], dict]:
    """() -> every element of the tf.data `ds` as one tensor per key, read on the first
    call only (the elements must have fixed shapes)."""
    @functools.cache
    def tensors() -> dict:
        from jaxnets.data.tf_setup import import_tf  # pylint: disable=g-import-not-at-top
        tf = import_tf()
        blocks = list(ds.batch(4096))
        if not blocks:
            return {k: tf.zeros((0, *s.shape), s.dtype) for k, s in ds.element_spec.items()}
        return {k: tf.concat([block[k] for block in blocks], 0) for k in blocks[0]}
    return tensors
