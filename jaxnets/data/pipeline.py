"""tf.data input pipelines on the host, yielding dicts of numpy arrays with fixed keys.

The lecture's advice, "read all data into RAM, use multiple CPU threads to prefetch", as
pipelines (TensorFlow runs on the CPU only; nothing here touches a JAX device):

  train: TFDS split (this process's shard) -> decode + resize/tokenize -> cache in RAM
         -> shuffle with a seed derived from (seed, epoch) -> batch (drop remainder)
         -> [fit to the model's input] -> [stateless augmentation of the whole batch]
         + normalize + mask, parallel map
         -> prefetch -> numpy in a background thread, a few batches ahead
  eval:  shard -> ... -> cache -> batch -> normalize + mask -> prefetch; the last partial
         batch is padded with zeros and mask 0, and every process yields the same number of
         batches (extra all-padding ones) so multi-host evaluation stays in step.

Speed (input stall, `python -m jaxnets.experiments.benchmark --sections=stall`): augmentation
works on whole batches (one vectorized gather instead of a crop per image), and a host
thread turns tf.data's batches into numpy ahead of the consumer, so the training thread's
`next()` only takes a ready batch from a queue (lenet_mnist, batches straight into the
step: 30% -> 2-5% of the time spent waiting; experiments/benchmarks/speedups.md).

Batches (numpy): images `image` float32[B, H, W, C] (normalized), `label` int32[B],
`mask` float32[B]; text `tokens` int32[B, T] (0 = PAD, right-padded), `lengths` int32[B],
`label` int32[B], `mask` float32[B]. `mask` is 1 for real rows, 0 for padding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from jaxnets.data import catalog
from jaxnets.background import background
from jaxnets.data.tf_setup import import_tf
from jaxnets.data.tokenizer import Vocabulary

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Source:
    """What images.py / text.py hand to `Dataset`: unbatched, preprocessed, cached data."""
    train: Any                     # tf.data.Dataset, this process's train shard, in RAM
    eval: Any                      # tf.data.Dataset, this process's eval shard, in RAM
    num_train: int                 # examples in `train`
    num_eval: int                  # examples in `eval`
    finish: Callable               # tf: batch -> batch with the final keys, dtypes and mask
    input_shape: tuple
    num_classes: int
    augment: Callable | None = None   # tf: (batch, seed int64[2]) -> batch; stateless
    fit: Callable | None = None       # tf: batch -> batch, first thing after batching
    post: Callable[[Batch], Batch] = lambda batch: batch  # numpy, after batching
    vocab: Vocabulary | None = None
    eval_texts: list[str] | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One dataset, ready to iterate: train epochs (reproducible) and padded evaluation.

    Attributes:
      name, kind: TFDS name; "image" or "text".
      num_classes: labels are 0..num_classes-1.
      num_train, num_eval: examples in this process's shards.
      steps_per_epoch: full train batches per epoch, equal on every process.
      eval_steps: eval batches, equal on every process (the last ones padded).
      input_shape: image (H, W, C), or text (max_length,).
      vocab: text only; save it with the run to encode new text the same way.
    """
    name: str
    kind: str
    num_classes: int
    num_train: int
    num_eval: int
    steps_per_epoch: int
    eval_steps: int
    batch_size: int
    eval_batch_size: int
    input_shape: tuple
    seed: int
    vocab: Vocabulary | None
    source: Source = dataclasses.field(repr=False)

    def train_epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Yields `steps_per_epoch - start_step` batches of epoch `epoch`.

        The order depends only on (seed, epoch), so an interrupted run resumes exactly with
        `train_epoch(epoch, start_step=k)` (the same as skipping k batches, but cheaper).
        """
        self._check_start(start_step)
        tf = import_tf()
        ds = self._epoch_pipeline(tf.constant(seed_for(self.seed, epoch), tf.int64),
                                  tf.constant(start_step, tf.int64))
        return self._numpy(ds.prefetch(tf.data.AUTOTUNE))

    def train_epochs(self, epoch: int, start_step: int = 0,
                     epochs_per_pipeline: int = 1000) -> Iterator[Batch]:
        """The batches of epochs `epoch`, `epoch` + 1, ... (the first from `start_step`),
        endlessly: `train_epoch`'s batches, epoch after epoch, from one tf.data pipeline.

        Building a pipeline holds the GIL for ~70 ms (lenet_mnist: tracing its maps), a
        third of a small model's epoch; here one pipeline serves `epochs_per_pipeline`
        epochs, and tf.data prefetches across their ends.
        """
        self._check_start(start_step)  # now, not at the first batch
        return self._epochs(epoch, start_step, epochs_per_pipeline)

    def _epochs(self, epoch: int, start_step: int, epochs_per_pipeline: int):
        tf = import_tf()
        while True:
            epochs = range(epoch, epoch + epochs_per_pipeline)
            seeds = np.array([seed_for(self.seed, e) for e in epochs], np.int64)
            starts = np.zeros(len(epochs), np.int64)
            starts[0] = start_step
            ds = tf.data.Dataset.from_tensor_slices((seeds, starts)).flat_map(
                tf.autograph.experimental.do_not_convert(self._epoch_pipeline))
            yield from self._numpy(ds.prefetch(tf.data.AUTOTUNE))
            epoch, start_step = epoch + epochs_per_pipeline, 0

    def _check_start(self, start_step: int) -> None:
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step={start_step} is outside 0..{self.steps_per_epoch} "
                             f"(steps_per_epoch of {self.name})")

    def _epoch_pipeline(self, epoch_seed, start_step):
        """tf.data batches of one epoch from batch `start_step` (both int64 tensors)."""
        tf = import_tf()
        ds = self.source.train.shuffle(max(self.source.num_train, 1), seed=epoch_seed,
                                       reshuffle_each_iteration=False)
        ds = ds.take(self.steps_per_epoch * self.batch_size)
        ds = ds.skip(start_step * self.batch_size)
        ds = ds.batch(self.batch_size, drop_remainder=True)
        augment, finish, fit = self.source.augment, self.source.finish, self._fit
        if augment is None:
            return ds.map(lambda batch: finish(fit(batch)), num_parallel_calls=tf.data.AUTOTUNE)
        # batch k of the epoch draws from (epoch seed, k): a resumed epoch matches
        return ds.enumerate().map(
            lambda i, batch: finish(augment(fit(batch), tf.stack([epoch_seed, i + start_step]))),
            num_parallel_calls=tf.data.AUTOTUNE)

    def _numpy(self, ds) -> Iterator[Batch]:
        """numpy batches, converted by a host thread a few ahead of the consumer."""
        return background(self.source.post(batch) for batch in ds.as_numpy_iterator())

    def _fit(self, batch):
        return batch if self.source.fit is None else self.source.fit(batch)

    def eval_batches(self) -> Iterator[Batch]:
        """Yields `eval_steps` batches covering every eval example of this shard exactly once.

        All batches have `eval_batch_size` rows; padding rows are zeros with mask 0.
        """
        tf = import_tf()
        ds = self.source.eval.batch(self.eval_batch_size)
        ds = ds.map(lambda batch: self.source.finish(self._fit(batch)),
                    num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        emitted = 0
        for batch in ds.as_numpy_iterator():
            yield self.source.post(pad_rows(batch, self.eval_batch_size))
            emitted += 1
        empty = {k: np.zeros((0, *s.shape[1:]), s.dtype.as_numpy_dtype)
                 for k, s in ds.element_spec.items()}
        for _ in range(self.eval_steps - emitted):
            yield self.source.post(pad_rows(empty, self.eval_batch_size))

    def eval_texts(self) -> list[str]:
        """Raw texts of this shard's eval split, in the order of `eval_batches` (text only)."""
        if self.source.eval_texts is None:
            raise ValueError(f"eval_texts() is for text datasets; {self.name!r} is {self.kind}")
        return list(self.source.eval_texts)


def seed_for(seed: int, epoch: int) -> int:
    """A 32-bit shuffle seed for (seed, epoch): different per epoch, same on every machine."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def pad_rows(batch: Batch, rows: int) -> Batch:
    """Pads every array of `batch` with zero rows up to `rows` (so mask = 0 there)."""
    have = len(next(iter(batch.values())))
    if have == rows:
        return batch
    return {k: np.concatenate([v, np.zeros((rows - have, *v.shape[1:]), v.dtype)])
            for k, v in batch.items()}


def build_dataset(name: str, *, batch_size: int, eval_batch_size: int | None, seed: int,
                  data_dir: str | None, process_index: int, process_count: int,
                  split_train: str, split_eval: str | None, **kind_options) -> Dataset:
    """See `jaxnets.data.get_dataset`; `kind_options` go to images.py or text.py."""
    from jaxnets.data import public  # pylint: disable=g-import-not-at-top

    eval_batch_size = eval_batch_size or batch_size
    _check_arguments(batch_size, eval_batch_size, seed, process_index, process_count)
    spec = catalog.spec_for(name)
    builder = public.prepared_builder(name, data_dir)
    split_eval = split_eval or spec.eval_split
    shard = lambda split: shard_split(split, process_index, process_count)
    if spec.kind == "image":
        from jaxnets.data import images  # pylint: disable=g-import-not-at-top
        source = images.make_source(builder, spec, shard(split_train), shard(split_eval),
                                    **kind_options)
    else:
        from jaxnets.data import text  # pylint: disable=g-import-not-at-top
        source = text.make_source(builder, spec, split_train, shard(split_train),
                                  shard(split_eval), data_dir=data_dir, **kind_options)
    total_train = count_examples(builder, split_train)
    total_eval = count_examples(builder, split_eval)
    steps = (total_train // process_count) // batch_size
    if steps == 0:
        raise ValueError(
            f"{name} {split_train!r} has {total_train} examples, {total_train // process_count}"
            f" per process: fewer than batch_size={batch_size}; lower batch_size")
    eval_steps = math.ceil(math.ceil(total_eval / process_count) / eval_batch_size)
    return Dataset(name=name, kind=spec.kind, num_classes=source.num_classes,
                   num_train=source.num_train, num_eval=source.num_eval,
                   steps_per_epoch=steps, eval_steps=eval_steps, batch_size=batch_size,
                   eval_batch_size=eval_batch_size, input_shape=tuple(source.input_shape),
                   seed=seed, vocab=source.vocab, source=source)


def shard_split(split: str, index: int, count: int):
    """This process's part of `split`: TFDS even splits, sizes differing by at most one."""
    if count == 1:
        return split
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return tfds.even_splits(split, n=count)[index]


def read(builder, split, decoders=None):
    """The examples of `split` in a fixed order (no file shuffling, no TFDS auto-cache)."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                              read_config=tfds.ReadConfig(try_autocache=False))


def count_examples(builder, split) -> int:
    if isinstance(split, str) and split in builder.info.splits:  # a whole split: recorded
        return builder.info.splits[split].num_examples
    count = int(read(builder, split).cardinality())
    return count if count >= 0 else builder.info.splits[split].num_examples


def _check_arguments(batch_size: int, eval_batch_size: int, seed: int,
                     process_index: int, process_count: int) -> None:
    if batch_size < 1 or eval_batch_size < 1:
        raise ValueError(f"batch sizes must be >= 1, got batch_size={batch_size}, "
                         f"eval_batch_size={eval_batch_size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in 0..process_count-1 "
                         f"(process_count={process_count})")
