"""The lecture's warning measured: "training can bottleneck on reading data".

One training job (LeNet-5 as in lenet_mnist: batch 32, 28x28 digits padded to 32x32,
random shifts, normalization) fed four ways, each timed over the same steps:

  naive          every batch read from its files and decoded in the training thread
  RAM cache      decoded once into RAM; shifts, normalization and batching still in the
                 training thread ("read all data into RAM")
  prefetch       RAM cache, with batches made ahead by a pool of CPU threads ("use
                 multiple CPU threads to prefetch data")
  + device       also copied to the device ahead of use (jaxnets.train.placement.prefetch_to_device)

The data is synthetic digits in one compressed .npz file per example (TensorFlow is not
needed, so this runs on a GPU machine too); the files sit in the OS page cache, so
"naive" pays for opening and decoding, not for a disk: a real disk only adds to it.
Stall = time spent waiting for the next batch / wall time (jaxnets.train.meter.StallMeter).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import tempfile
import time

import numpy as np

from jaxnets.train.meter import StallMeter

PAD = 4           # random shifts of up to 4 pixels, as lenet_mnist's augment
MEAN, STD = 0.1307, 0.3081


@dataclasses.dataclass(frozen=True)
class LessonRow:
    method: str
    examples_per_sec: float
    stall: float
    steps: int


def write_files(directory: str, count: int, seed: int = 0) -> list[str]:
    """`count` synthetic 28x28 digits (a bright stroke on black), one .npz file each."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        image = np.zeros((28, 28), np.uint8)
        row, col = rng.integers(4, 20, 2)
        image[row:row + 8, col:col + 3] = rng.integers(128, 256)
        path = os.path.join(directory, f"{i:05d}.npz")
        np.savez_compressed(path, image=image, label=np.int32(i % 10))
        paths.append(path)
    return paths


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
               tiny: bool = False) -> list[LessonRow]:
    """The four rows, each over `steps` steps of `train_step(batch_dict)` (which must
    wait for its result, so that time spent computing is not counted as waiting)."""
    from jaxnets.train.placement import prefetch_to_device  # pylint: disable=g-import-not-at-top

    if tiny:
        batch, steps, examples = 8, 4, 64
    with tempfile.TemporaryDirectory(prefix="jaxnets-lesson-") as directory:
        paths = write_files(directory, examples)
        train_step(next(cached_batches(*_load_all(paths), batch, 1)))  # compile first
        rows = [_measure("naive (decode every batch in the training thread)",
                         naive_batches(paths, batch, steps), train_step, batch)]
        loaded = time.perf_counter()
        images, labels = _load_all(paths)
        load_seconds = time.perf_counter() - loaded
        rows.append(_measure(f"RAM cache (decoded once: {load_seconds:.2f} s)",
                             cached_batches(images, labels, batch, steps), train_step, batch))
        rows.append(_measure("RAM cache + prefetch by 2 CPU threads",
                             prefetched_batches(images, labels, batch, steps),
                             train_step, batch))
        rows.append(_measure("RAM cache + prefetch + device prefetch",
                             prefetch_to_device(prefetched_batches(images, labels, batch,
                                                                   steps)),
                             train_step, batch))
    return rows


def _load_all(paths):
    decoded = [decode(p) for p in paths]
    return np.stack([d[0] for d in decoded]), np.array([d[1] for d in decoded], np.int32)


def _measure(method: str, batches, train_step, batch: int) -> LessonRow:
    meter = StallMeter(batches)
    steps = 0
    for item in meter:
        train_step(item)
        steps += 1
    return LessonRow(method, steps * batch / max(meter.wall_seconds, 1e-9), meter.fraction,
                     steps)
