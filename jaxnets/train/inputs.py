"""What the loop accepts as data, and an in-memory dataset of numpy arrays.

The loop reads batches (dicts of arrays with fixed keys: `image` or
`tokens`/`lengths`, `label`, and `mask` for padded rows) from:

  * a dataset object with `train_epoch(epoch)` and `eval_batches()` (a
    `jaxnets.data` Dataset, or `ArrayData` below), and optionally
    `train_epochs(epoch, start_step)`: all epochs from there as one stream;
  * a function `epoch -> iterable of batches` (exact resume: it must give the
    same batches for the same epoch);
  * a re-iterable such as a list of batches (the same order every epoch);
  * a one-shot iterator (one pass; a resumed run cannot replay it).

No TensorFlow is involved: only `jaxnets.data` imports it.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jaxnets.data.arrays import ArrayData  # noqa: F401  (re-exported)


@dataclasses.dataclass
class Inputs:
    """The loop's view of the data.

    Attributes:
      train_epoch: (epoch, start) -> iterable of the training batches of
        `epoch` from batch number `start` on (a resumed run starts mid-epoch).
      eval_batches: () -> iterable of eval batches (every example once, the
        last batch padded with mask 0), or None for no evaluation.
      steps_per_epoch: batches per epoch when known, else None.
      train_epochs: (epoch, start) -> the batches of `epoch` from `start`, then of every
        later epoch, endlessly (`jaxnets.data`'s tf.data datasets: one pipeline for
        them all), or None.
    """

    train_epoch: Callable[[int, int], Iterable[dict]]
    eval_batches: Callable[[], Iterable[dict]] | None
    steps_per_epoch: int | None
    train_epochs: Callable[[int, int], Iterator[dict]] | None = None


class _EpochEnd:
    def __repr__(self):
        return "EPOCH_END"


EPOCH_END = _EpochEnd()  # the item `epoch_stream` puts between two epochs' batches


def epoch_stream(inputs: "Inputs", epoch: int, start: int, steps: int) -> Iterator[Any]:
    """The training batches from batch `start` of `epoch` on, across epochs, `steps` in all.

    Each epoch's batches are followed by EPOCH_END, except where the `steps` run out. One
    stream for the whole run lets a host thread read past an epoch's end: the next epoch's
    first batches are prepared while the loop finishes (and evaluates) the current one.
    A dataset with `train_epochs` gives every epoch from one pipeline, built before the
    first batch. A whole epoch with no batches ends the stream after its EPOCH_END (the
    loop reports it).
    """
    for batches in _epoch_iterators(inputs, epoch, start):
        given = 0
        for batch in itertools.islice(batches, steps):
            given += 1
            yield batch
        steps -= given
        if steps == 0:
            return
        yield EPOCH_END
        if given == 0 and start == 0:
            return
        start = 0


def _epoch_iterators(inputs: "Inputs", epoch: int, start: int) -> Iterator:
    """Iterators over the batches of `epoch` (from `start`), `epoch` + 1, ..."""
    spe = inputs.steps_per_epoch
    if inputs.train_epochs is not None and spe:
        stream = inputs.train_epochs(epoch, start)  # one stream: each epoch its next slice
        yield itertools.islice(stream, spe - start)
        while True:
            yield itertools.islice(stream, spe)
    yield iter(inputs.train_epoch(epoch, start))
    for e in itertools.count(epoch + 1):
        yield iter(inputs.train_epoch(e, 0))


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


def _not_one_batch(data, role: str) -> None:
    if isinstance(data, Mapping):  # iterating it would give its keys as "batches"
        raise TypeError(
            f"the {role} data is one dict of arrays ({', '.join(map(str, data))}): pass a "
            "list of batch dicts, e.g. [batch], or ArrayData(arrays, batch_size=...) to cut "
            "the arrays into batches")


def _epoch_fn(data) -> tuple[Callable[[int, int], Iterable[dict]], int | None]:
    _not_one_batch(data, "training")
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
    _not_one_batch(data, "eval")
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
    train_epochs = getattr(train, "train_epochs", None) if steps else None
    return Inputs(train_epoch, _eval_fn(eval_data), steps, train_epochs)
