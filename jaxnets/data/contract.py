"""The dataset contract, in one place, for both input paths (numpy only: no TF, no JAX).

`pipeline.py` (tf.data) and `arrays.py` (numpy) both follow these rules, so the same seed
gives the same examples in the same order on either path:

  sharding   process p of P reads a contiguous block of each split's n rows, the first
             n % P processes one row more (np.array_split's rule, and tfds.even_splits'):
             a TFDS reader then reads only its own rows.
  steps      every process takes `min block // batch_size` train steps per epoch and
             `ceil(max block / eval_batch_size)` eval steps, so multi-host steps stay in
             lockstep (a smaller shard's last eval batches are all padding).
  order      epoch e of seed s visits the process's train rows in the order
             `np.random.default_rng([s, e]).permutation(num_train)`, cut into
             `steps_per_epoch` batches (the remainder is dropped); resuming at batch k
             yields exactly the batches from k on.
  padding    a short batch gets zero rows whose `mask` is 0; a batch without `mask` gets
             one of ones for its real rows first.

Batches are dicts of arrays sharing their first dimension; `mask` is float32[B], 1 for
real rows and 0 for padding.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

Batch = dict[str, np.ndarray]


# -- arguments and sizes -------------------------------------------------------------------

def check_numeric(arrays: Batch, where: str) -> None:
    """A one-line TypeError naming the key of an array that cannot feed a model: strings,
    Python objects, or anything else numpy cannot hold as numbers."""
    for key, value in arrays.items():
        dtype = np.asarray(value).dtype
        if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
            kind = {"U": "strings", "S": "bytes", "O": "Python objects"}.get(dtype.kind,
                                                                            "not numbers")
            raise TypeError(f"{where}: {key!r} has dtype {dtype} ({kind}); a model takes "
                            "arrays of numbers: decode, tokenize or map it to numbers first")


def check_arguments(batch_size, eval_batch_size, seed, process_index, process_count) -> None:
    """One-line ValueErrors for sizes, seed or process numbers that cannot work."""
    for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name}={value!r}: must be a positive integer")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: must be an integer >= 0")
    if not (isinstance(process_count, (int, np.integer)) and process_count >= 1
            and isinstance(process_index, (int, np.integer))
            and 0 <= process_index < process_count):
        raise ValueError(f"process_index={process_index!r}, process_count={process_count!r}: "
                         "need 0 <= process_index < process_count")


@dataclasses.dataclass(frozen=True)
class Steps:
    """Batches per epoch and per evaluation, the same on every process."""
    per_epoch: int
    eval: int


def steps(name: str, total_train: int, total_eval: int, process_count: int,
          batch_size: int, eval_batch_size: int) -> Steps:
    """The steps of splits of `total_train` / `total_eval` rows over `process_count` shards.

    Raises:
      ValueError: the smallest train shard holds no full batch.
    """
    smallest = total_train // process_count
    if smallest < batch_size:
        raise ValueError(f"{name} has {total_train} training examples, {smallest} per "
                         f"process: fewer than batch_size={batch_size}; lower batch_size")
    largest = math.ceil(total_eval / process_count)
    return Steps(per_epoch=smallest // batch_size,
                 eval=math.ceil(largest / eval_batch_size))


def check_start(name: str, start_step: int, steps_per_epoch: int) -> None:
    """A resumed epoch starts at a batch 0..steps_per_epoch (the end: no batches left)."""
    if not 0 <= start_step <= steps_per_epoch:
        raise ValueError(f"start_step={start_step} is outside 0..{steps_per_epoch} "
                         f"(steps_per_epoch of {name})")


# -- which rows, in which order -------------------------------------------------------------

def shard_rows(n: int, process_index: int, process_count: int) -> slice:
    """The contiguous rows of `n` that process `process_index` of `process_count` reads.

    Blocks in process order, sizes differing by at most one, the larger ones first:
    10 rows over 3 processes are rows 0-3, 4-6 and 7-9.
    """
    size, extra = divmod(n, process_count)
    start = process_index * size + min(process_index, extra)
    return slice(start, start + size + (process_index < extra))


def epoch_order(seed: int, epoch: int, num_train: int) -> np.ndarray:
    """int64[num_train]: the order in which epoch `epoch` of `seed` visits the train rows."""
    return np.random.default_rng([seed, epoch]).permutation(num_train)


def epoch_batches(seed: int, epoch: int, num_train: int, batch_size: int,
                  steps_per_epoch: int, start_step: int = 0) -> np.ndarray:
    """int64[steps_per_epoch - start_step, batch_size]: the rows of each batch of the epoch
    from batch `start_step` on (row i of the result is batch start_step + i)."""
    order = epoch_order(seed, epoch, num_train)
    return order[start_step * batch_size:steps_per_epoch * batch_size].reshape(-1, batch_size)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for (seed, epoch), the same on every machine: stateless augmentation
    draws batch k of the epoch from (epoch_seed, k), so a resumed epoch augments alike."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# -- padding --------------------------------------------------------------------------------

def with_mask(batch: Batch) -> Batch:
    """`batch` with a float32 `mask`: its own cast, or ones when it has none."""
    rows = num_rows(batch)
    mask = batch.get("mask")
    mask = np.ones(rows, np.float32) if mask is None else np.asarray(mask, np.float32)
    return {**batch, "mask": mask}


def pad_rows(batch: Batch, rows: int) -> Batch:
    """`batch` padded with zero rows up to `rows` rows (mask 0 there), e.g. eval's last
    batch; a batch that has `rows` rows already is returned as it is."""
    have = num_rows(batch)
    if have > rows:
        raise ValueError(f"a batch of {have} rows cannot be padded to {rows}: give it at "
                         f"most {rows} rows")
    return _pad(batch, rows - have)


def pad_to_multiple(batch: Batch, multiple: int) -> Batch:
    """`batch` padded with zero rows (mask 0) to a multiple of `multiple` rows, e.g. to
    split it over `multiple` devices; a missing mask is added as ones for the real rows."""
    return _pad(batch, -num_rows(batch) % multiple)


def _pad(batch: Batch, extra: int) -> Batch:
    if not extra:
        return batch
    rows = num_rows(batch)
    batch = dict(batch)
    batch.setdefault("mask", np.ones(rows, np.float32))  # the real rows keep counting
    return {k: np.concatenate([np.asarray(v), np.zeros((extra, *np.shape(v)[1:]),
                                                        np.asarray(v).dtype)])
            for k, v in batch.items()}


def num_rows(batch: Batch) -> int:
    """The rows of a batch: the first dimension its arrays share."""
    return len(next(iter(batch.values())))
