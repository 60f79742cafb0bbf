"""What a trained model is asked, read and checked as training read its data (no TensorFlow).

Text files: UTF-8, one text (or number) per line; '\\n' or '\\r\\n' line ends and a
leading byte-order mark are accepted. Undecodable bytes are a ValueError naming the line
and the byte. What each question does with its lines:

  * empty (or whitespace-only) lines are skipped, and `Lines.skipped` says which; every
    answer keeps the number of the line it answers;
  * a text longer than the run's max_length tokens is cut to its first max_length, as
    training cut it, and `Lines.truncated` says which;
  * a number for a number_words run must be a whole number 0..9999 in ASCII digits;
    leading zeros are dropped ('007' is 7, as int('007') reads it); anything else is a
    ValueError naming the first bad line and counting the others, before any answer.

Images: files, or directories of them (.png .jpg .jpeg .bmp .gif .tif .tiff .webp .pgm
.ppm; other files there are left out); each is opened (its header read) before any
answer, so a missing or unreadable file is named first. `fit_image` is training's rule
(jaxnets/data/images.py) in PIL: channels matched (grey repeated to RGB, RGB to luma),
then a picture at most 25% smaller than the model's input on both sides is padded,
centred (28x28 digits -> LeNet's 32x32), anything else is scaled to cover the input
(bilinear, antialiased when shrinking) and its centre cut out.

Clips (frame classifiers): a .npy file of frames <[T, H, W]> or <[T, H, W, C]> at the
run's frame size, integers 0..255 or floats in [0, 1]; or a directory whose images, sorted
by name, are the frames, each fitted by `fit_image`. Every clip is read and checked
before any answer.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm")


@dataclasses.dataclass
class Lines:
    """The non-empty lines of a file: their texts and 1-based line numbers."""
    texts: list[str]
    numbers: list[int]
    skipped: list[int] = dataclasses.field(default_factory=list)    # empty lines
    truncated: list[int] = dataclasses.field(default_factory=list)  # cut to max_length


def read_lines(path: str) -> Lines:
    """The non-empty lines of the UTF-8 file `path` ('-': standard input)."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {path} ({e.strerror}): give a UTF-8 text file, "
                         "one input per line") from None
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":  # the final line end
        raw_lines.pop()
    lines = Lines([], [])
    for number, raw in enumerate(raw_lines, 1):
        try:
            text = raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} line {number} is not UTF-8 (byte 0x{raw[e.start]:02x} "
                             f"at column {e.start + 1}): save the file as UTF-8") from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            lines.texts.append(text)
            lines.numbers.append(number)
        else:
            lines.skipped.append(number)
    if not lines.texts:
        raise ValueError(f"{path} has no text{' (only empty lines)' if raw_lines else ''}: "
                         "give one input per line")
    return lines


def check_numbers(texts: Sequence[str], places: Sequence[str], largest: int = 9999,
                  ) -> list[str]:
    """The texts as numbers 0..largest without leading zeros; a ValueError names the first
    that is not one by its place (e.g. 'numbers.txt line 4') and counts the others."""
    numbers, bad = [], []
    for text, place in zip(texts, places):
        digits = text.strip()
        if digits.isascii() and digits.isdigit() and int(digits) <= largest:
            numbers.append(str(int(digits)))
        else:
            bad.append((place, text))
    if bad:
        (place, text), more = bad[0], len(bad) - 1
        also = f" (and {more} more like it)" if more else ""
        raise ValueError(f"{place}: {text!r} is not a whole number 0..{largest} written in "
                         f"digits{also}: this run translates such numbers")
    return numbers


def note(lines: Lines, path: str, max_length: int | None = None) -> list[str]:
    """One-line notes on stderr's behalf: the skipped and the truncated lines."""
    notes = []
    if lines.skipped:
        notes.append(f"{path}: skipped {_count(lines.skipped, 'empty line')} "
                     f"({_which(lines.skipped)})")
    if lines.truncated:
        notes.append(f"{path}: {_count(lines.truncated, 'text')} longer than the "
                     f"{max_length} tokens this run was trained on: only the first "
                     f"{max_length} are read, as in training ({_which(lines.truncated)})")
    return notes


def _count(items, noun: str) -> str:
    return f"{len(items):,} {noun}{'s' * (len(items) != 1)}"


def _which(numbers: list[int], shown: int = 5) -> str:
    listed = ", ".join(map(str, numbers[:shown]))
    return f"line{'s' * (len(numbers) > 1)} {listed}" + (", ..." if len(numbers) > shown else "")


# -- images -------------------------------------------------------------------------------

def image_paths(given: list[str]) -> list[str]:
    """The image files `given` names: files as they are, directories' images sorted by
    name; each checked to open as an image (its header) before anything runs."""
    paths = []
    for path in given:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.lower().endswith(IMAGE_SUFFIXES)
                           and os.path.isfile(os.path.join(path, name)))
            if not found:
                raise ValueError(f"{path} holds no images ({' '.join(IMAGE_SUFFIXES)}): give "
                                 "a directory of images, or image files")
            paths += found
        else:
            paths.append(path)
    for path in paths:
        with open_image(path):
            pass
    return paths


def clip_paths(given: list[str], frame: tuple[int, int, int]) -> list[str]:
    """The clips `given` names (each a .npy file or a directory of frames), each read and
    checked (`read_clip`) before anything runs; they are read again when answered, a
    batch at a time, so a long list is never held in memory whole."""
    for path in given:
        if not (os.path.isdir(path) or (path.endswith(".npy") and os.path.isfile(path))):
            raise ValueError(f"--clip={path} is neither a .npy file nor a directory of frame "
                             "images: give one of them per clip")
    for path in given:
        read_clip(path, frame)
    return list(given)


def read_clip(path: str, frame: tuple[int, int, int]) -> np.ndarray:
    """The clip at `path` as <float32>[T, H, W, C] in [0, 1] (see the module docstring);
    a ValueError naming the file and what is wrong with it."""
    if os.path.isdir(path):
        files = image_paths([path])  # sorted by name: the frames' order
        return np.stack([load_image(f, lambda img: fit_image(img, frame)) for f in files]
                        ).astype(np.float32) / 255.0
    try:
        frames = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} as a .npy array ({e}): give frames saved with "
                         "numpy.save") from None
    given = frames.shape
    if frames.ndim == 3 and frame[-1] == 1:
        frames = frames[..., None]
    if frames.ndim != 4 or tuple(frames.shape[1:]) != frame or not len(frames):
        raise ValueError(f"{path} holds an array of shape {given}: give frames "
                         f"[T >= 1, {', '.join(map(str, frame))}] (the run's frame size)")
    if np.issubdtype(frames.dtype, np.integer) and 0 <= frames.min() and frames.max() <= 255:
        return frames.astype(np.float32) / 255.0  # pixel values, as uint8 holds them
    if not np.issubdtype(frames.dtype, np.floating) or not (
            np.isfinite(frames).all() and 0 <= frames.min() and frames.max() <= 1):
        raise ValueError(f"{path} holds {frames.dtype} values outside "
                         f"{'0..255' if np.issubdtype(frames.dtype, np.integer) else '[0, 1]'}:"
                         " give integers 0..255 or floats in [0, 1]")
    return frames.astype(np.float32)


def open_image(path: str):
    """PIL's lazy image (header read); a ValueError naming the file if it is not one."""
    from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError) as e:  # missing, or not an image
        raise ValueError(f"cannot read {path} as an image ({getattr(e, 'strerror', None) or e}):"
                         " give a PNG or JPEG file") from None


def load_image(path: str, convert) -> np.ndarray:
    """`convert(PIL image)` of the image at `path`; a damaged file is a ValueError naming it."""
    with open_image(path) as img:
        try:
            img.load()
            return convert(img)
        except (OSError, SyntaxError, ValueError) as e:  # truncated or damaged pixel data
            raise ValueError(f"cannot read {path} as an image ({e}): give a PNG or JPEG "
                             "file") from None


def fit_image(img, target: tuple[int, int, int]) -> np.ndarray:
    """A PIL image as uint8[H, W, C] by training's rule (see the module docstring)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    height, width, channels = target
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    if (h, w) != (height, width) and h <= height <= h + h // 4 and w <= width <= w + w // 4:
        canvas = Image.new(img.mode, (width, height))
        canvas.paste(img, ((width - w) // 2, (height - h) // 2))
        img = canvas
    elif (h, w) != (height, width):
        scale = max(height / h, width / w)
        new_w, new_h = max(round(w * scale), width), max(round(h * scale), height)
        img = img.resize((new_w, new_h), Image.BILINEAR)
        left, top = (new_w - width) // 2, (new_h - height) // 2
        img = img.crop((left, top, left + width, top + height))
    return np.asarray(img, np.uint8).reshape(height, width, channels)


def read_strip(path: str, shape: tuple) -> np.ndarray:
    """A picture of white-on-black digits as <float32>[H, W, 1] in [0, 1], scaled to height
    H and padded with black on the right to width W (or squeezed if wider)."""
    height, width = shape[:2]

    def convert(img):
        img = img.convert("L")
        new_width = max(1, round(img.width * height / img.height))
        return np.asarray(img.resize((min(new_width, width), height)), np.float32) / 255.0
    pixels = load_image(path, convert)
    strip = np.zeros((height, width, 1), np.float32)
    strip[:, :pixels.shape[1], 0] = pixels
    return strip


def write_strip(path: str, image: np.ndarray) -> None:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    try:
        Image.fromarray((np.clip(image[..., 0], 0, 1) * 255).astype(np.uint8)).save(path)
    except OSError as e:
        raise ValueError(f"cannot write {path} ({e.strerror or e}): give a writable path") from None
