"""In-memory numpy datasets: the `Dataset` interface without TensorFlow.

For data that is already arrays (the constructed sequence tasks, a user's
own numpy data, benchmarks on a machine without TensorFlow): the same
`train_epoch(epoch, start_step)` / `eval_batches()` contract as the tf.data
pipelines, by the same rules (contract.py) — epoch order fixed by (seed, epoch),
every eval example exactly once with the last batch padded and masked, and
an even per-process shard for multi-host runs — so the same rows with the same
seed give the same batches on either path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxnets.data import contract


def _rows(arrays: dict[str, np.ndarray]) -> int:
    if not arrays:
        raise ValueError("a split is an empty dict: give it arrays (e.g. 'image' and "
                         "'label'), or None for no eval data")
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"arrays must share their first dimension, got {sizes}")
    return next(iter(sizes.values()))


def _take(arrays: dict[str, np.ndarray], rows: slice) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in arrays.items()}


class ArrayData:
    """Numpy arrays as a dataset: shuffled per (seed, epoch), padded eval.

    Args:
      train: dict of arrays with equal first dimension, e.g.
        `{"image": <float32>[n, H, W, C], "label": <int32>[n]}`; an optional
        `mask: <float32>[n]` weights each example (0 leaves it out), else every
        training row weighs 1.
      eval: the same for evaluation, or None.
      batch_size: training batch size (per process); the last incomplete
        batch of an epoch is dropped, so every step sees `batch_size` examples.
      eval_batch_size: defaults to `batch_size`; the last eval batch is padded
        with zero rows whose `mask` is 0, so no eval example is dropped.
      seed: shuffling seed; epoch e of seed s is always the same order.
      process_index, process_count: this process's shard (multi-host).
      name, kind, num_classes, input_shape, vocab: what the data is, for the
        code that builds a model for it (as on `jaxnets.data.Dataset`);
        source_vocab: the input side's vocabulary of a translation task.

    Example:
        >>> data = ArrayData({"image": np.zeros((10, 4, 4, 1), np.float32),
        ...                   "label": np.arange(10) % 2}, None, batch_size=4)
        >>> data.steps_per_epoch, [b["image"].shape for b in data.train_epoch(0)]
        (2, [(4, 4, 4, 1), (4, 4, 4, 1)])
    """

    chunk_bytes = 32 << 20  # rows gathered at once by train_epoch

    def __init__(self, train: dict[str, Any], eval: dict[str, Any] | None = None, *,
                 batch_size: int, eval_batch_size: int | None = None, seed: int = 0,
                 process_index: int = 0, process_count: int = 1, name: str = "arrays",
                 kind: str = "arrays", num_classes: int | None = None,
                 input_shape: tuple | None = None, vocab=None, source_vocab=None):
        contract.check_arguments(batch_size, eval_batch_size, seed, process_index,
                                 process_count)
        train = {k: np.asarray(v) for k, v in train.items()}
        eval = None if eval is None else {k: np.asarray(v) for k, v in eval.items()}
        contract.check_numeric(train, "ArrayData's train arrays")
        if eval is not None:
            contract.check_numeric(eval, "ArrayData's eval arrays")
        total_train, total_eval = _rows(train), (0 if eval is None else _rows(eval))
        shard = lambda total: contract.shard_rows(total, process_index, process_count)  # noqa: E731
        self.train = _take(train, shard(total_train))
        self.eval = None if eval is None else _take(eval, shard(total_eval))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        self.name, self.kind, self.num_classes = name, kind, num_classes
        self.input_shape, self.vocab, self.source_vocab = input_shape, vocab, source_vocab
        self.num_train = _rows(self.train)
        self.num_eval = 0 if self.eval is None else _rows(self.eval)
        steps = contract.steps(name, total_train, total_eval, process_count, batch_size,
                               self.eval_batch_size)
        self.steps_per_epoch, self.eval_steps = steps.per_epoch, steps.eval

    def train_epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict]:
        """The batches of `epoch` from batch `start_step` on; the order depends on (seed, epoch).

        Rows are gathered a chunk of batches at a time (at most ~32 MiB) and handed out as
        slices: one numpy fancy-index per key and batch cost more than a small model's
        step spends computing (rnn_translate: ~4% of its 1 ms step).
        """
        contract.check_start(self.name, start_step, self.steps_per_epoch)  # now, not lazily
        return self._epoch(epoch, start_step)

    def _epoch(self, epoch: int, start_step: int) -> Iterator[dict]:
        batches = contract.epoch_batches(self.seed, epoch, self.num_train, self.batch_size,
                                         self.steps_per_epoch, start_step)
        mask = np.ones(self.batch_size, np.float32)
        mask.flags.writeable = False  # shared by every batch
        row_bytes = sum(v[:1].nbytes for v in self.train.values())
        chunk = max(1, self.chunk_bytes // max(row_bytes * self.batch_size, 1))
        for first in range(0, len(batches), chunk):
            idx = batches[first:first + chunk].ravel()
            rows = {k: v[idx] for k, v in self.train.items()}
            for i in range(len(idx) // self.batch_size):
                part = slice(i * self.batch_size, (i + 1) * self.batch_size)
                yield {"mask": mask, **{k: v[part] for k, v in rows.items()}}  # theirs wins

    def eval_batches(self) -> Iterator[dict]:
        """`eval_steps` batches of `eval_batch_size` rows; padding rows have mask 0."""
        if self.eval is None:
            return
        size = self.eval_batch_size
        for step in range(self.eval_steps):  # past this shard's end: all-padding batches
            batch = {k: v[step * size:(step + 1) * size] for k, v in self.eval.items()}
            yield contract.pad_rows(contract.with_mask(batch), size)
