"""Datasets for jaxnets: TFDS builders for real data from PyPI, and host-side tf.data pipelines.

    from jaxnets import data
    ds = data.get_dataset("mnist5k", batch_size=128, image_shape=(32, 32, 1))  # LeNet input
    for batch in ds.train_epoch(0):          # {"image": f32[128,32,32,1], "label", "mask"}
        ...
    for batch in ds.eval_batches():          # every test digit once; padding has mask 0
        ...

Names (`DATASETS`): the embedded "rt_sentences" and "mnist5k" need only PyPI; the public
TFDS ones need internet the first time and fail within seconds when it is missing.
Reading a TFDS dataset needs the `data` extra (`pip install "jaxnets[data]"`: TensorFlow
and TFDS); without it `get_dataset` says so in one line (tf_setup.DataExtraMissingError),
while the numpy-made sequence task "number_words" and `ArrayData` (arrays.py) need neither.

Importing this package is cheap: it imports neither TensorFlow nor TFDS. TFDS loads (and
the embedded builders register with it) on the first `get_dataset` of a TFDS dataset,
TensorFlow after it. To use the embedded builders from TFDS directly, import their
modules, which registers them:

    import tensorflow_datasets as tfds
    from jaxnets.data import rt_sentences  # noqa: F401  registers "rt_sentences"
    ds = tfds.load("rt_sentences", split="train")
"""

from __future__ import annotations

from jaxnets.data.catalog import SPECS as _SPECS
from jaxnets.data.catalog import spec_for
from jaxnets.data.contract import Batch
from jaxnets.data.pipeline import Dataset
from jaxnets.data.catalog import DatasetUnavailableError
from jaxnets.data.tf_setup import DataExtraMissingError
from jaxnets.data.tokenizer import Vocabulary, build_vocabulary, tokenize

DATASETS: dict[str, str] = {name: spec.description for name, spec in _SPECS.items()}

__all__ = ["DATASETS", "Batch", "DataExtraMissingError", "Dataset",
           "DatasetUnavailableError", "Vocabulary", "build_vocabulary", "get_dataset", "tokenize"]


def get_dataset(name: str, *, batch_size: int, eval_batch_size: int | None = None,
                seed: int = 0, data_dir: str | None = None,
                image_shape: tuple[int, int, int] | None = None,
                max_length: int | None = None, vocab_size: int | None = None,
                vocab: Vocabulary | None = None,
                process_index: int = 0, process_count: int = 1,
                split_train: str = "train", split_eval: str | None = None,
                augment: bool = False,
                length_buckets: tuple[int, ...] | None = None) -> Dataset:
    """Prepares dataset `name` if needed and returns its train/eval pipelines.

    Args:
      name: a key of `DATASETS` (or a config of one, e.g. "imagenette/160px-v2").
      batch_size: train batch size per process; the last partial batch of an epoch is dropped.
      eval_batch_size: eval batch size per process (default batch_size); the last batch is
        padded and masked, never dropped.
      seed: shuffle seed; epoch e's order depends only on (seed, e).
      data_dir: TFDS data directory (default: TFDS's, ~/tensorflow_datasets or $TFDS_DATA_DIR).
      image_shape: images only: (H, W, C) of the model input; 28x28 -> 32x32 pads (LeNet),
        other sizes resize and centre-crop (-> 227 for AlexNet). Default: native shape.
      max_length: text only: tokens kept per text (default: longest train text, <= 256).
      vocab_size: text only: vocabulary cap including PAD and OOV (default 20,000).
      vocab: text only: a saved `Vocabulary` to reuse (evaluation, prediction, resume).
      process_index, process_count: this process's shard of every split (multi-host).
      split_train, split_eval: TFDS split strings; split_eval defaults to the dataset's
        labelled evaluation split ("test", or "validation" for glue/sst2 and imagenette).
      augment: images only: random translation (+ flips where they keep the label), with
        stateless ops seeded by (seed, epoch, position).
      length_buckets: text only: widths to cut each batch's tokens to (see jaxnets.data.text).

    Raises:
      DatasetUnavailableError: a public dataset is not prepared and this machine is offline;
        or (DataExtraMissingError) TensorFlow or TFDS, needed to read it, is not installed.
      ValueError: an unknown name or an argument that does not fit the dataset.
    """
    from jaxnets.data import pipeline  # pylint: disable=g-import-not-at-top

    if spec_for(name).kind == "sequence":
        from jaxnets.data import sequence_tasks
        if image_shape is not None or augment:
            raise ValueError(f"image_shape and augment do not apply to {name}, a sequence task")
        return sequence_tasks.load(
            name, batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed,
            data_dir=data_dir, max_length=max_length, vocab_size=vocab_size,
            process_index=process_index, process_count=process_count)
    if length_buckets and process_count > 1:
        raise ValueError("length_buckets cut each process's batch to its own longest row, so "
                         "the processes' batches would differ in width: leave length_buckets "
                         "out for a multi-process run")
    options = _kind_options(spec_for(name).kind, image_shape=image_shape, augment=augment,
                            max_length=max_length, vocab_size=vocab_size, vocab=vocab,
                            length_buckets=length_buckets)
    return pipeline.build_dataset(
        name, batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed,
        data_dir=data_dir, process_index=process_index, process_count=process_count,
        split_train=split_train, split_eval=split_eval, **options)


def _kind_options(kind: str, **options) -> dict:
    """Keeps the options of `kind`; an option of the other kind that is set is an error."""
    image_keys, text_keys = {"image_shape", "augment"}, {"max_length", "vocab_size", "vocab",
                                                        "length_buckets"}
    mine, other = (image_keys, text_keys) if kind == "image" else (text_keys, image_keys)
    wrong = [k for k in other if options[k] not in (None, False)]
    if wrong:
        raise ValueError(f"{', '.join(sorted(wrong))} do not apply to {kind} datasets")
    return {k: v for k, v in options.items() if k in mine}
