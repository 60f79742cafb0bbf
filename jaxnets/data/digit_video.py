"""Frame-level video classification on REAL digits: the lecture's synced many-to-many.

A clip is 10..20 frames of 28x28. A real MNIST digit appears somewhere near the middle,
drifts up to 2 pixels per frame (bouncing within MAX_SHIFT of the centre) for a few
frames, and is replaced by another digit; before the first digit and between digits come
*memory frames*: blank, or the frame under a block of noise that hides most of it.

Every frame is labelled with the last digit SEEN (a visible frame: its own digit), or
NONE (class 10) before any digit has been seen. A memory frame's label is therefore not
in the frame: only a model that remembers earlier frames can give it. The digits and
their labels are human-made (mnist5k); the clips are constructed, numpy only,
deterministic in their seed; the test clips use only the 1,000 test digits.

Arrays (ArrayData's rows, one per clip; padded to MAX_FRAMES):
  image        <float32>[n, T, 28, 28, 1] in [0, 1], zero after the clip's end
  lengths      <int32>[n] frames of each clip, MIN_FRAMES..MAX_FRAMES
  targets      <int32>[n, T] each frame's class (0..9, NONE), 0 on padding
  target_mask  <float32>[n, T] 1 on the clip's frames
  memory       <float32>[n, T] 1 on its memory frames (blank or hidden), 0 elsewhere
"""

from __future__ import annotations

import numpy as np

from jaxnets.data import split_cache

NONE = 10                      # "no digit seen yet"
NUM_CLASSES = 11
CLASS_NAMES = tuple(str(d) for d in range(10)) + ("none",)
MIN_FRAMES, MAX_FRAMES = 10, 20
MAX_SHIFT = 4                  # a digit's offset from the centre, pixels (MNIST's border)
MAX_SPEED = 2                  # pixels per frame, each axis
VISIBLE_RUN = (2, 5)           # frames a digit stays visible, at least and at most
GAP = (1, 3)                   # memory frames in a row, at least and at most
P_START_GAP = 0.4              # a clip starts with memory frames (label NONE)
P_GAP = 0.6                    # a visible run is followed by memory frames
HIDDEN_SIDE = 22               # the noise block of a hidden frame covers 22x22 of 28x28
CLIPS = {"train": 3_000, "test": 1_000}


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` <[H, W]> moved down dy and right dx pixels; what leaves the frame is cut,
    what enters is zero."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def hidden(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A memory frame: blank, or `frame` under a HIDDEN_SIDE square of uniform noise."""
    if rng.random() < 0.5:
        return np.zeros_like(frame)
    top, left = rng.integers(0, frame.shape[0] - HIDDEN_SIDE + 1, size=2)
    out = frame.copy()
    out[top:top + HIDDEN_SIDE, left:left + HIDDEN_SIDE] = rng.random((HIDDEN_SIDE,) * 2)
    return out


class Mover:
    """One digit's position and velocity; `step` moves it, bouncing at +-MAX_SHIFT."""

    def __init__(self, rng: np.random.Generator):
        self.pos = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=2)
        self.vel = rng.integers(-MAX_SPEED, MAX_SPEED + 1, size=2)

    def step(self) -> None:
        self.pos = self.pos + self.vel
        for axis in (0, 1):
            if abs(self.pos[axis]) > MAX_SHIFT:  # reflect back inside
                self.pos[axis] = np.sign(self.pos[axis]) * 2 * MAX_SHIFT - self.pos[axis]
                self.vel[axis] = -self.vel[axis]


def clip(images: np.ndarray, labels: np.ndarray, length: int, rng: np.random.Generator):
    """One clip of `length` frames: (<float32>[length, H, W], targets, memory), both
    <[length]>; `images` <float32>[n, H, W] in [0, 1]."""
    frames = np.zeros((length, *images.shape[1:]), np.float32)
    targets = np.full(length, NONE, np.int32)
    memory = np.zeros(length, np.float32)
    seen, under, t = NONE, np.zeros(images.shape[1:], np.float32), 0
    gap = rng.random() < P_START_GAP
    while t < length:
        if gap:  # memory frames: the last digit stays under them, unseen
            for _ in range(min(int(rng.integers(GAP[0], GAP[1] + 1)), length - t)):
                frames[t], targets[t], memory[t] = hidden(under, rng), seen, 1.0
                t += 1
        k, mover = int(rng.integers(len(images))), Mover(rng)
        seen = int(labels[k])
        for _ in range(min(int(rng.integers(VISIBLE_RUN[0], VISIBLE_RUN[1] + 1)), length - t)):
            under = frames[t] = shifted(images[k], *mover.pos)
            targets[t] = seen
            mover.step()
            t += 1
        gap = rng.random() < P_GAP
    return frames, targets, memory


def digit_video(images: np.ndarray, labels: np.ndarray, count: int, seed: int,
                min_frames: int = MIN_FRAMES, max_frames: int = MAX_FRAMES) -> dict:
    """`count` clips of min_frames..max_frames frames of `images`, labelled per frame.

    Args:
      images: <uint8 or float>[n, H, W, 1] real digit images (uint8: 0..255).
      labels: <int>[n] their classes 0..9.
      count: clips to make; `seed` fixes everything in them (digits, motion, noise).

    Returns the arrays of the module docstring, padded to max_frames.
    """
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"clip lengths {min_frames}..{max_frames}: need 1 <= min <= max")
    rng = np.random.default_rng(seed)
    pixels = images[..., 0].astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    height, width = pixels.shape[1:]
    out = {"image": np.zeros((count, max_frames, height, width, 1), np.float32),
           "lengths": rng.integers(min_frames, max_frames + 1, size=count).astype(np.int32),
           "targets": np.zeros((count, max_frames), np.int32),
           "target_mask": np.zeros((count, max_frames), np.float32),
           "memory": np.zeros((count, max_frames), np.float32)}
    for i, length in enumerate(out["lengths"]):
        frames, targets, memory = clip(pixels, labels, int(length), rng)
        out["image"][i, :length, ..., 0] = frames
        out["targets"][i, :length], out["memory"][i, :length] = targets, memory
        out["target_mask"][i, :length] = 1.0
    return out


def task(data_dir):
    """The `digit_video` task for sequence_tasks.TASKS: (train, test, vocab, meta)."""
    train, test = (split_cache.whole_split("mnist5k", split, data_dir)
                   for split in ("train", "test"))
    return (digit_video(train["image"], train["label"], CLIPS["train"], seed=0),
            digit_video(test["image"], test["label"], CLIPS["test"], seed=1), None,
            {"input_shape": (MAX_FRAMES, *train["image"].shape[1:]),
             "num_classes": NUM_CLASSES})
