"""tf.data input pipelines on the host, yielding dicts of numpy arrays with fixed keys.

The lecture's advice, "read all data into RAM, use multiple CPU threads to prefetch", as
pipelines (TensorFlow runs on the CPU only; nothing here touches a JAX device). Which rows
each process reads, the order of an epoch, the step counts and the padding are
contract.py's rules, the same as ArrayData's (arrays.py): the same seed gives the same
batches of examples on both paths.

  train: this process's rows of the TFDS split -> decode + resize/tokenize -> in RAM as
         one tensor per key (read at the first epoch)
         epoch e: the rows of each batch (contract.epoch_batches, computed when tf.data
         reaches the epoch) -> gather the batch's rows -> [fit to the model's input]
         -> [stateless augmentation of the whole batch] + normalize + mask, parallel map
         -> prefetch -> numpy in a background thread, a few batches ahead
  eval:  this process's rows -> ... -> in RAM (read whole at the first evaluation) ->
         batch -> normalize + mask -> prefetch; the last partial batch is padded with
         zeros and mask 0, and every process yields the same number of batches (extra
         all-padding ones) so multi-host evaluation stays in step.

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
from collections.abc import Iterator

import numpy as np

from jaxnets.background import background
from jaxnets.data import catalog, contract, tfds_io
from jaxnets.data.contract import Batch
from jaxnets.data.tf_setup import import_tf
from jaxnets.data.tfds_io import Source
from jaxnets.data.tokenizer import Vocabulary

__all__ = ["Batch", "Dataset", "Source", "build_dataset"]


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

        The order depends only on (seed, epoch) (contract.epoch_batches), so an interrupted
        run resumes exactly with `train_epoch(epoch, start_step=k)` (the same as skipping k
        batches, but cheaper).
        """
        contract.check_start(self.name, start_step, self.steps_per_epoch)
        return self._numpy(self._pipeline(epoch, start_step, epochs=1))

    def train_epochs(self, epoch: int, start_step: int = 0,
                     epochs_per_pipeline: int = 1000) -> Iterator[Batch]:
        """The batches of epochs `epoch`, `epoch` + 1, ... (the first from `start_step`),
        endlessly: `train_epoch`'s batches, epoch after epoch, from one tf.data pipeline.

        Building a pipeline holds the GIL for ~70 ms (lenet_mnist: tracing its maps), a
        third of a small model's epoch; here one pipeline serves `epochs_per_pipeline`
        epochs, and tf.data prefetches across their ends.
        """
        contract.check_start(self.name, start_step, self.steps_per_epoch)  # now, not lazily
        return self._epochs(epoch, start_step, epochs_per_pipeline)

    def _epochs(self, epoch: int, start_step: int, epochs_per_pipeline: int):
        while True:
            yield from self._numpy(self._pipeline(epoch, start_step, epochs_per_pipeline))
            epoch, start_step = epoch + epochs_per_pipeline, 0

    def _pipeline(self, epoch: int, start_step: int, epochs: int):
        """tf.data batches of `epochs` epochs from batch `start_step` of epoch `epoch`."""
        tf = import_tf()
        rows = self.source.train()  # {key: tensor[num_train, ...]}, in RAM
        augment, finish, fit = self.source.augment, self.source.finish, self._fit

        @tf.autograph.experimental.do_not_convert  # plain TF ops: converting costs ~1 s
        def make_batch(epoch_seed, number, indices):
            batch = fit({key: tf.gather(value, indices) for key, value in rows.items()})
            if augment is not None:  # batch k of the epoch draws from (epoch seed, k)
                batch = augment(batch, tf.stack([epoch_seed, number]))
            return finish(batch)
        ds = self._batch_rows(epoch, start_step, epochs)
        return ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def _batch_rows(self, epoch: int, start_step: int, epochs: int):
        """tf.data of (epoch seed, batch number, int64[batch_size] rows), one per batch; an
        epoch's rows are drawn (contract.epoch_batches, numpy) when tf.data reaches it."""
        tf = import_tf()

        def draw(e):
            e = int(e)
            first = start_step if e == epoch else 0
            rows = contract.epoch_batches(self.seed, e, self.num_train, self.batch_size,
                                          self.steps_per_epoch, first)
            return (np.full(len(rows), contract.epoch_seed(self.seed, e), np.int64),
                    np.arange(first, self.steps_per_epoch, dtype=np.int64), rows)

        @tf.autograph.experimental.do_not_convert
        def epoch_rows(e):
            seeds, numbers, rows = tf.numpy_function(draw, [e], [tf.int64] * 3)
            return (tf.ensure_shape(seeds, [None]), tf.ensure_shape(numbers, [None]),
                    tf.ensure_shape(rows, [None, self.batch_size]))
        return tf.data.Dataset.range(epoch, epoch + epochs).map(epoch_rows).unbatch()

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
        ds = self.source.eval().batch(self.eval_batch_size)
        ds = ds.map(lambda batch: self.source.finish(self._fit(batch)),
                    num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        empty = {k: np.zeros((0, *s.shape[1:]), s.dtype.as_numpy_dtype)
                 for k, s in ds.element_spec.items()}
        batches = ds.as_numpy_iterator()
        for _ in range(self.eval_steps):  # past this shard's end: all-padding batches
            batch = next(batches, empty)
            yield self.source.post(contract.pad_rows(batch, self.eval_batch_size))

    def eval_texts(self) -> list[str]:
        """Raw texts of this shard's eval split, in the order of `eval_batches` (text only)."""
        if self.source.eval_texts is None:
            raise ValueError(f"eval_texts() is for text datasets; {self.name!r} is {self.kind}")
        return list(self.source.eval_texts)


def build_dataset(name: str, *, batch_size: int, eval_batch_size: int | None, seed: int,
                  data_dir: str | None, process_index: int, process_count: int,
                  split_train: str, split_eval: str | None, **kind_options) -> Dataset:
    """See `jaxnets.data.get_dataset`; `kind_options` go to images.py or text.py."""
    from jaxnets.data import public  # pylint: disable=g-import-not-at-top

    eval_batch_size = eval_batch_size or batch_size
    contract.check_arguments(batch_size, eval_batch_size, seed, process_index, process_count)
    spec = catalog.spec_for(name)
    builder = public.prepared_builder(name, data_dir)
    train, evaluation = (tfds_io.Shard.of(builder, split, process_index, process_count)
                         for split in (split_train, split_eval or spec.eval_split))
    steps = contract.steps(f"{name} {split_train!r}", train.total, evaluation.total,
                           process_count, batch_size, eval_batch_size)
    if spec.kind == "image":
        from jaxnets.data import images  # pylint: disable=g-import-not-at-top
        source = images.make_source(builder, spec, train, evaluation, **kind_options)
    else:
        from jaxnets.data import text  # pylint: disable=g-import-not-at-top
        source = text.make_source(builder, spec, train, evaluation, data_dir=data_dir,
                                  **kind_options)
    return Dataset(name=name, kind=spec.kind, num_classes=source.num_classes,
                   num_train=source.num_train, num_eval=source.num_eval,
                   steps_per_epoch=steps.per_epoch, eval_steps=steps.eval,
                   batch_size=batch_size, eval_batch_size=eval_batch_size,
                   input_shape=tuple(source.input_shape), seed=seed, vocab=source.vocab,
                   source=source)
