"""The lecture's warning measured: "training can bottleneck on reading data".

One training job (LeNet-5 as in lenet_mnist: batch 32, 28x28 digits padded to 32x32,
random shifts, normalization) fed five ways, each timed over the same steps, in the
lecture's order of advice (disk -> RAM -> prefetch -> device prefetch), interleaved
(each repetition runs every arm once, the order rotating; the median repetition is shown):

  disk           every epoch read from a TFRecord file on the disk in the training thread,
                 the file dropped from the page cache before each epoch (storage.py), no
                 RAM cache ("use an SSD instead of an HDD": what the disk costs)
  naive          every batch read from its own file and decoded in the training thread;
                 the files sit in the OS page cache, so it pays for opening and decoding
  RAM cache      decoded once into RAM; shifts, normalization and batching still in the
                 training thread ("read all data into RAM")
  prefetch       RAM cache, with batches made ahead by a pool of CPU threads ("use
                 multiple CPU threads to prefetch data")
  + device       also copied to the device ahead of use (jaxnets.train.placement.prefetch_to_device)

The data is synthetic digits, the same examples in every arm: one compressed .npz file
per example for "naive", one TFRecord file (a 785-byte record per example: the uint8
image and its label) for "disk". TensorFlow is not needed, so this runs on a GPU machine
too. Stall = time spent waiting for the next batch / wall time
(jaxnets.train.meter.StallMeter). MB/s = examples/s x the bytes an example takes where
the arm reads it from (its .npz file, its TFRecord, the RAM arrays).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np

from jaxnets.benchmark import storage
from jaxnets.train.meter import StallMeter

PAD = 4           # random shifts of up to 4 pixels, as lenet_mnist's augment
MEAN, STD = 0.1307, 0.3081


@dataclasses.dataclass(frozen=True)
class LessonRow:
    method: str
    examples_per_sec: float
    stall: float
    steps: int
    megabytes_per_sec: float    # examples/s x bytes per example in the arm's source
    low: float = 0.0            # the slowest and fastest repetition's examples/s
    high: float = 0.0


@dataclasses.dataclass(frozen=True)
class Lesson:
    rows: list[LessonRow]
    storage: storage.Probe      # the disk arm's file read alone, cold and warm
    disk_epochs: int            # epochs the disk arm read, each after a page-cache drop


def synthetic_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` synthetic 28x28 digits (a bright stroke on black): uint8 images, int32 labels."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.uint8)
    for image in images:
        row, col = rng.integers(4, 20, 2)
        image[row:row + 8, col:col + 3] = rng.integers(128, 256)
    return images, (np.arange(count) % 10).astype(np.int32)


def write_files(directory: str, images, labels) -> list[str]:
    """One compressed .npz file per example."""
    paths = []
    for i, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(directory, f"{i:05d}.npz")
        np.savez_compressed(path, image=image, label=np.int32(label))
        paths.append(path)
    return paths


def write_tfrecord(path: str, images, labels) -> int:
    """One TFRecord per example (784 image bytes, then the label as one byte), synced to
    the disk; returns the file's size in bytes."""
    flat = np.asarray(images, np.uint8).reshape(len(images), -1)
    return storage.write_records(path, np.concatenate(
        [flat, np.asarray(labels, np.uint8)[:, None]], axis=1))


def decode(path: str) -> tuple[np.ndarray, int]:
    with np.load(path) as f:
        return f["image"], int(f["label"])


def finish(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> dict:
    """uint8 [B, 28, 28] -> the loop's batch: padded to 32x32, shifted, normalized."""
    batch = len(images)
    padded = np.pad(images, ((0, 0), (2 + PAD, 2 + PAD), (2 + PAD, 2 + PAD)))
    dy, dx = rng.integers(0, 2 * PAD + 1, (2, batch))
    rows = dy[:, None] + np.arange(32)
    cols = dx[:, None] + np.arange(32)
    shifted = padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]
    image = (shifted.astype(np.float32) / 255.0 - MEAN) / STD
    return {"image": image[..., None], "label": labels.astype(np.int32),
            "mask": np.ones(batch, np.float32)}


def disk_batches(path: str, batch: int, steps: int, seed: int = 0):
    """Batches read from the TFRecord file `path` in the training thread, in file order,
    epoch after epoch; before each epoch the file is dropped from the page cache, so each
    epoch reads the disk and nothing stays in RAM. An epoch's last partial batch is
    skipped."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < steps:
        storage.drop_from_page_cache(path)
        epoch_start = done
        with open(path, "rb") as f:
            while done < steps:
                payloads = storage.read_records(f, batch)
                if len(payloads) < batch:
                    break
                rows = np.frombuffer(b"".join(payloads), np.uint8).reshape(batch, -1)
                yield finish(rows[:, :-1].reshape(batch, 28, 28), rows[:, -1], rng)
                done += 1
        if done == epoch_start:
            raise ValueError(f"{path}: fewer than {batch} records, not one batch to read")


def naive_batches(paths, batch: int, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for step in range(steps):
        chosen = rng.choice(len(paths), batch, replace=False)
        decoded = [decode(paths[i]) for i in chosen]
        yield finish(np.stack([d[0] for d in decoded]),
                     np.array([d[1] for d in decoded]), rng)


def cached_batches(images, labels, batch: int, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        chosen = rng.choice(len(images), batch, replace=False)
        yield finish(images[chosen], labels[chosen], rng)


def prefetched_batches(images, labels, batch: int, steps: int, *, workers: int = 2,
                       ahead: int = 4, seed: int = 0):
    """Batches made by a thread pool, `ahead` in flight, yielded in order."""
    seeds = np.random.SeedSequence(seed).spawn(steps)

    def make(i):
        rng = np.random.default_rng(seeds[i])
        chosen = rng.choice(len(images), batch, replace=False)
        return finish(images[chosen], labels[chosen], rng)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = [pool.submit(make, i) for i in range(min(ahead, steps))]
        for i in range(steps):
            result = pending.pop(0).result()
            if i + ahead < steps:
                pending.append(pool.submit(make, i + ahead))
            yield result


def run_lesson(train_step, *, batch: int = 32, steps: int = 200, examples: int = 2048,
               reps: int = 5, tiny: bool = False) -> Lesson:
    """The five rows, each over `steps` steps of `train_step(batch_dict)` (which must
    wait for its result, so that time spent computing is not counted as waiting), and
    the disk arm's file read alone. The arms run interleaved, `reps` times each in a
    rotating order; a row is the median repetition (examples/s and stall each), with the
    slowest and fastest. The files go to a temporary directory: `TMPDIR` picks the disk
    (the drop cannot work on tmpfs)."""
    from jaxnets.train.placement import prefetch_to_device  # pylint: disable=g-import-not-at-top

    if tiny:
        batch, steps, examples, reps = 8, 4, 64, 1
    if examples < batch:
        raise ValueError(f"{examples} examples make no batch of {batch}: give more examples")
    digits = synthetic_digits(examples)
    with tempfile.TemporaryDirectory(prefix="jaxnets-lesson-") as directory:
        paths = write_files(directory, *digits)
        record = os.path.join(directory, "train.tfrecord")
        record_bytes = write_tfrecord(record, *digits)
        npz_bytes = sum(os.path.getsize(p) for p in paths)
        train_step(next(cached_batches(*digits, batch, 1)))  # compile first
        loaded = time.perf_counter()
        images, labels = _load_all(paths)
        load_seconds = time.perf_counter() - loaded
        in_ram = (images.nbytes + labels.nbytes) / examples
        arms = [  # (row name, the arm's batches, bytes an example takes where it is read)
            ("disk: a TFRecord file read every epoch, dropped from the page cache before "
             "each (no RAM cache)", lambda: disk_batches(record, batch, steps),
             record_bytes / examples),
            ("naive (decode every batch in the training thread)",
             lambda: naive_batches(paths, batch, steps), npz_bytes / examples),
            (f"RAM cache (decoded once: {load_seconds:.2f} s)",
             lambda: cached_batches(images, labels, batch, steps), in_ram),
            ("RAM cache + prefetch by 2 CPU threads",
             lambda: prefetched_batches(images, labels, batch, steps), in_ram),
            ("RAM cache + prefetch + device prefetch",
             lambda: prefetch_to_device(prefetched_batches(images, labels, batch, steps)),
             in_ram)]
        runs = [[] for _ in arms]
        for rep in range(reps):
            for i in [*range(rep % len(arms), len(arms)), *range(rep % len(arms))]:
                name, batches, per_example = arms[i]
                runs[i].append(_measure(name, batches(), train_step, batch, per_example))
        rows = [_median_row(r) for r in runs]
        probe = storage.probe(record, reps=2 if tiny else 5)
    return Lesson(rows, probe, disk_epochs=-(-steps // (examples // batch)))


def _median_row(runs: list[LessonRow]) -> LessonRow:
    """The repetition of median speed (the lower of the two middle ones for an even count),
    with the stall's median (the same rule) and the speed's spread."""
    ranked = sorted(runs, key=lambda r: r.examples_per_sec)
    middle = ranked[(len(ranked) - 1) // 2]
    return dataclasses.replace(
        middle, stall=statistics.median_low(r.stall for r in runs),
        low=ranked[0].examples_per_sec, high=ranked[-1].examples_per_sec)


def _load_all(paths):
    decoded = [decode(p) for p in paths]
    return np.stack([d[0] for d in decoded]), np.array([d[1] for d in decoded], np.int32)


def _measure(method: str, batches, train_step, batch: int, bytes_per_example: float
             ) -> LessonRow:
    meter = StallMeter(batches)
    steps = 0
    for item in meter:
        train_step(item)
        steps += 1
    rate = steps * batch / max(meter.wall_seconds, 1e-9)
    return LessonRow(method, rate, meter.fraction, steps, rate * bytes_per_example / 1e6,
                     rate, rate)
