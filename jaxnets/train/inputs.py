"""What the loop accepts as data, and an in-memory dataset of numpy arrays.

The loop reads batches (dicts of arrays with fixed keys: `image` or
`tokens`/`lengths`, `label`, and `mask` for padded rows) from:

  * a dataset object with `train_epoch(epoch)` and `eval_batches()` (a
    `jaxnets.data` Dataset, or `ArrayData` below);
  * a function `epoch -> iterable of batches` (exact resume: it must give the
    same batches for the same epoch);
  * a re-iterable such as a list of batches (the same order every epoch);
  * a one-shot iterator (one pass; a resumed run cannot replay it).

No TensorFlow is involved: only `jaxnets.data` imports it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np


@dataclasses.dataclass
class Inputs:
    """The loop's view of the data.

    Attributes:
      train_epoch: (epoch, start) -> iterable of the training batches of
        `epoch` from batch number `start` on (a resumed run starts mid-epoch).
      eval_batches: () -> iterable of eval batches (every example once, the
        last batch padded with mask 0), or None for no evaluation.
      steps_per_epoch: batches per epoch when known, else None.
    """

    train_epoch: Callable[[int, int], Iterable[dict]]
    eval_batches: Callable[[], Iterable[dict]] | None
    steps_per_epoch: int | None


def _skipping(epoch_fn: Callable[[int], Iterable[dict]]) -> Callable[[int, int], Iterator[dict]]:
    """(epoch, start) -> batches, by reading and dropping the first `start` batches."""
    def train_epoch(epoch, start):
        it = iter(epoch_fn(epoch))
        for _ in range(start):
            next(it, None)
        return it
    return train_epoch


def _takes_start_step(fn) -> bool:
    try:
        return "start_step" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _epoch_fn(data) -> tuple[Callable[[int, int], Iterable[dict]], int | None]:
    if hasattr(data, "train_epoch"):
        steps = getattr(data, "steps_per_epoch", None)
        if _takes_start_step(data.train_epoch):  # e.g. jaxnets.data: skips without reading
            return (lambda epoch, start: data.train_epoch(epoch, start_step=start)), steps
        return _skipping(data.train_epoch), steps
    if callable(data):
        return _skipping(data), None
    if isinstance(data, Iterator):
        used = []  # a one-shot iterator: one pass, then empty epochs

        def one_pass(epoch):
            if used:
                return iter(())
            used.append(True)
            return data
        return _skipping(one_pass), None
    if isinstance(data, Iterable):
        return _skipping(lambda epoch: data), (len(data) if hasattr(data, "__len__") else None)
    raise TypeError(f"cannot train on {type(data).__name__!r}: pass a dataset with "
                    "train_epoch(epoch), a function epoch -> batches, or a list of batch dicts")


def _eval_fn(data) -> Callable[[], Iterable[dict]] | None:
    if data is None:
        return None
    if hasattr(data, "eval_batches"):
        return data.eval_batches
    if callable(data):
        return data
    if isinstance(data, Iterator):
        batches = list(data)  # evaluated many times: keep it
        return lambda: batches
    if isinstance(data, Iterable):
        return lambda: data
    raise TypeError(f"cannot evaluate on {type(data).__name__!r}: pass a dataset with "
                    "eval_batches(), a function () -> batches, or a list of batch dicts")


def as_inputs(train, eval_data=None) -> Inputs:
    """Normalises the accepted kinds of data (module docstring) to `Inputs`.

    When `eval_data` is None and `train` is a dataset object, its own
    `eval_batches` is used.
    """
    train_epoch, steps = _epoch_fn(train)
    if eval_data is None and hasattr(train, "eval_batches"):
        eval_data = train
    return Inputs(train_epoch, _eval_fn(eval_data), steps)


class ArrayData:
    """Numpy arrays as a dataset: shuffled per (seed, epoch), padded eval.

    Args:
      train: dict of arrays with equal first dimension, e.g.
        `{"image": <float32>[n, H, W, C], "label": <int32>[n]}`.
      eval: the same for evaluation, or None.
      batch_size: training batch size; the last incomplete batch of an epoch
        is dropped, so every step sees `batch_size` examples.
      eval_batch_size: defaults to `batch_size`; the last eval batch is padded
        with zero rows whose `mask` is 0, so no eval example is dropped.
      seed: shuffling seed; epoch e of seed s is always the same order.

    Example:
        >>> data = ArrayData({"image": np.zeros((10, 4, 4, 1), np.float32),
        ...                   "label": np.arange(10) % 2}, None, batch_size=4)
        >>> data.steps_per_epoch, [b["image"].shape for b in data.train_epoch(0)]
        (2, [(4, 4, 4, 1), (4, 4, 4, 1)])
    """

    def __init__(self, train: dict[str, Any], eval: dict[str, Any] | None = None, *,
                 batch_size: int, eval_batch_size: int | None = None, seed: int = 0):
        self.train = {k: np.asarray(v) for k, v in train.items()}
        self.eval = None if eval is None else {k: np.asarray(v) for k, v in eval.items()}
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        self.num_train = len(next(iter(self.train.values())))
        self.num_eval = 0 if self.eval is None else len(next(iter(self.eval.values())))
        self.steps_per_epoch = self.num_train // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{self.num_train} training examples make no batch of "
                             f"{batch_size}: lower batch_size")

    def train_epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict]:
        """The batches of `epoch` from batch `start_step` on; the order depends on (seed, epoch)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_train)
        for i in range(start_step, self.steps_per_epoch):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            batch = {k: v[idx] for k, v in self.train.items()}
            batch["mask"] = np.ones(self.batch_size, np.float32)
            yield batch

    def eval_batches(self) -> Iterator[dict]:
        if self.eval is None:
            return
        size = self.eval_batch_size
        for start in range(0, self.num_eval, size):
            batch = {k: v[start:start + size] for k, v in self.eval.items()}
            real = len(next(iter(batch.values())))
            pad = size - real
            batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
                     for k, v in batch.items()}
            batch["mask"] = (np.arange(size) < real).astype(np.float32)
            yield batch
