"""Prepares a dataset and shows what is in it.

    python -m jaxnets.data --dataset=rt_sentences [--data_dir=DIR] [--examples=3]
    python -m jaxnets.data --list

Prints each split's size and label balance, and a few examples (text, or digits as ASCII).
A public dataset that is not prepared and cannot be downloaded from here is one line on
stderr (exit status 2) naming where to prepare it and the embedded alternative.
JAXNETS_VERBOSE=1 (or --verbosity=0) shows the libraries' own logs too (TensorFlow, TFDS).
"""

from __future__ import annotations

import numpy as np
from absl import flags

from jaxnets import cli, data
from jaxnets.data import catalog, public, tfds_io

_DATASET = flags.DEFINE_string("dataset", None, f"one of {', '.join(data.DATASETS)}")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's)")
_EXAMPLES = flags.DEFINE_integer("examples", 3, "examples to show from the first split",
                                lower_bound=0)
_LIST = flags.DEFINE_bool("list", False, "list the datasets jaxnets knows and exit")


def main(argv: list[str]) -> None:
    del argv
    if _LIST.value or not _DATASET.value:
        for name, description in data.DATASETS.items():
            print(f"{name:14s} {description}")
        if not _LIST.value:
            cli.fail("pass --dataset=NAME to prepare and inspect one")
        return
    spec = catalog.spec_for(_DATASET.value)  # ValueError: one line naming the known ones
    try:
        if spec.kind == "sequence":  # built from arrays (sequence_tasks.py), no TFDS builder
            print(describe_sequences(_DATASET.value, spec, _EXAMPLES.value))
            return
        builder = public.prepared_builder(spec.name, _DATA_DIR.value)
    except data.DatasetUnavailableError as e:
        cli.fail(str(e))
    except OSError as e:  # e.g. --data_dir names a file
        cli.fail(f"--data_dir={_DATA_DIR.value}: {e.strerror or e}")
    print(describe(builder, spec))
    print(show_examples(builder, spec, _EXAMPLES.value))


def describe_sequences(name: str, spec, count: int) -> str:
    """A sequence task's sizes and vocabularies, and its first `count` training pairs."""
    ds = data.get_dataset(name, batch_size=1, data_dir=_DATA_DIR.value or None)
    if ds.vocab is None:  # a class per step (digit_video): the targets are class ids
        sizes, decode = f"{ds.num_classes} classes per step", lambda ids: " ".join(map(str, ids))
    else:
        sizes, decode = f"vocabulary {len(ds.vocab)} tokens", ds.vocab.decode
    sizes += f", source vocabulary {len(ds.source_vocab)}" if ds.source_vocab else ""
    lines = [name, spec.description,
             f"  train {ds.num_train:,} examples, eval {ds.num_eval:,}; {sizes}",
             f"first {count} training examples:"]
    for i in range(min(count, ds.num_train)):
        row = {k: v[i] for k, v in ds.train.items()}
        target = decode(row["targets"][row["target_mask"] > 0])
        source = (ds.source_vocab.decode(row["source"]) if "source" in row else
                  f"image {'x'.join(map(str, row['image'].shape[:-1]))}" if "image" in row
                  else "")
        lines.append(f"  {source} -> {target}" if source else f"  {target}")
    return "\n".join(lines)


def describe(builder, spec) -> str:
    """One line per split: size and label balance."""
    names = builder.info.features["label"].names
    lines = [f"{spec.name} {builder.info.version} in {builder.data_dir}", spec.description]
    for split in builder.info.splits:
        labels = np.asarray(labels_of(builder, spec, split))
        if (labels < 0).all():  # e.g. GLUE's test splits: labels withheld (-1)
            lines.append(f"  {split:10s} {len(labels):7,} examples: unlabelled")
            continue
        counts = np.bincount(labels[labels >= 0], minlength=len(names))
        total = counts.sum()
        balance = ", ".join(f"{name} {count:,} ({count / max(total, 1):.1%})"
                            for name, count in zip(names, counts))
        lines.append(f"  {split:10s} {total:7,} examples: {balance}")
    return "\n".join(lines)


def labels_of(builder, spec, split) -> np.ndarray:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    decoders = {spec.input_key: tfds.decode.SkipDecoding()} if spec.kind == "image" else None
    ds = tfds_io.read(builder, split, decoders).map(lambda ex: ex["label"])
    return np.concatenate(list(ds.batch(8192).as_numpy_iterator()))


def show_examples(builder, spec, count: int) -> str:
    names = builder.info.features["label"].names
    split = next(iter(builder.info.splits))
    lines = [f"first {count} examples of {split}:"]
    for example in tfds_io.read(builder, split).take(count).as_numpy_iterator():
        label = names[example["label"]]
        if spec.kind == "text":
            lines.append(f"  [{label}] {example[spec.input_key].decode('utf-8')}")
        else:
            lines.append(f"  [{label}]\n{ascii_art(example[spec.input_key])}")
    return "\n".join(lines)


def ascii_art(image: np.ndarray, width: int = 28) -> str:
    """uint8[H, W, C] -> rows of characters, darkest ' ' to brightest '@' (2 rows per char)."""
    grey = image.mean(axis=-1)
    step = max(1, grey.shape[1] // width)
    grey = grey[::2 * step, ::step]
    ramp = np.array(list(" .:-=+*#%@"))
    return "\n".join("    " + "".join(ramp[(row / 256 * len(ramp)).astype(int)]) for row in grey)


if __name__ == "__main__":
    cli.run(main)
