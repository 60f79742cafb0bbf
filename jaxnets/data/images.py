"""Image preprocessing in tf.data: fit to the model's input, normalize, augment statelessly.

Images stay uint8 in the RAM cache (a quarter of float32's memory), at the smaller of their
native and their fitted size: fitted once before the cache when that shrinks them
(imagenette -> 227x227), fitted per batch after it when it enlarges them (the 28x28 digits
-> 227x227x3 for AlexNet: 4 MB cached instead of 773 MB, and no resizing of all 5,000
before the first full shuffle can start). Normalization to float32 happens per batch:

  * 28x28 -> 32x32 (LeNet): zero border, as in LeCun et al. 1998: a target at most 25%
    larger than the source on both sides is padded, centred;
  * anything else (-> 227x227 for AlexNet, or imagenette's varying sizes): the shorter side
    is resized to the target (antialiased), then the centre is cropped;
  * 1 <-> 3 channels: grey is repeated to RGB, RGB is converted to luma.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxnets.data import catalog, tfds_io
from jaxnets.data.tf_setup import import_tf

tf = import_tf()  # this module is imported only when an image dataset is built


def make_source(builder, spec: catalog.DatasetSpec, train: tfds_io.Shard,
                evaluation: tfds_io.Shard, *, image_shape=None,
                augment: bool = False) -> tfds_io.Source:
    """Fitted uint8 images of this process's shards, kept in RAM, plus the batch finisher."""
    native = tuple(builder.info.features[spec.input_key].shape)
    target = target_shape(spec.name, native, image_shape)
    key = spec.input_key
    fit_later = None not in native and np.prod(target) > np.prod(native)  # enlarging

    def example(ex):
        image = ex[key] if fit_later else fit_image(ex[key], target)
        return {"image": image, "label": ex["label"]}

    def load(shard):
        return tfds_io.read_shard(builder, shard).map(example,
                                                      num_parallel_calls=tf.data.AUTOTUNE)

    mean, std = spec.channel_stats(target[-1])
    # Read whole at the first evaluation, not with tf.data's cache(): a cut evaluation
    # (smoke runs, the peek of a resumed run) would leave that cache partial, discarded
    # with a warning, and the split read again next time.
    eval_rows = tfds_io.tensors_once(load(evaluation))
    return tfds_io.Source(
        train=tfds_io.tensors_once(load(train)),  # read at the first epoch
        eval=lambda: tf.data.Dataset.from_tensor_slices(eval_rows()),
        num_train=train.size, num_eval=evaluation.size,
        finish=functools.partial(finish, mean=mean, std=std),
        fit=functools.partial(fit_batch, target=target) if fit_later else None,
        input_shape=target,
        num_classes=builder.info.features["label"].num_classes,
        augment=functools.partial(augment_batch, flip=spec.flip, distort=spec.distort)
        if augment else None)


def target_shape(name: str, native: tuple, image_shape) -> tuple[int, int, int]:
    """The (H, W, C) batches will have: `image_shape`, or the dataset's own fixed shape."""
    if image_shape is None:
        if None in native:
            raise ValueError(
                f"{name} images have varying sizes {native}: pass image_shape=(H, W, C), "
                "e.g. (227, 227, 3) for AlexNet or (160, 160, 3)")
        return tuple(native)
    shape = tuple(int(v) for v in image_shape)
    if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
        raise ValueError(f"image_shape must be (H, W, C) with C 1 or 3, got {image_shape}")
    return shape


def fit_batch(batch, *, target: tuple[int, int, int]):
    """`fit_image` of every image of a batch (they share their native size)."""
    return {**batch, "image": fit_image(batch["image"], target)}


def fit_image(image, target: tuple[int, int, int]):
    """uint8[(B,) h, w, c] -> uint8[(B,) H, W, C]: channels matched, then padded or
    resized+cropped."""
    height, width, channels = target
    image = match_channels(image, channels)
    h, w = image.shape[-3], image.shape[-2]  # None when sizes vary
    if (h, w) == (height, width):
        return image
    if h is not None and w is not None and h <= height <= h + h // 4 \
            and w <= width <= w + w // 4:
        return tf.image.pad_to_bounding_box(
            image, (height - h) // 2, (width - w) // 2, height, width)
    return resize_and_crop(image, height, width)


def resize_and_crop(image, height: int, width: int):
    """Scales so the image covers height x width (aspect kept), then crops the centre."""
    size = tf.cast(tf.shape(image)[-3:-1], tf.float32)  # (h, w), batched or not
    target = tf.constant([height, width], tf.float32)
    scale = tf.reduce_max(target / size)
    new_size = tf.maximum(tf.cast(tf.round(size * scale), tf.int32), [height, width])
    resized = tf.image.resize(image, new_size, antialias=True)  # float32
    cropped = tf.image.resize_with_crop_or_pad(resized, height, width)
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8)


def match_channels(image, channels: int):
    have = image.shape[-1]
    if have == channels:
        return image
    if (have, channels) == (1, 3):
        return tf.image.grayscale_to_rgb(image)
    if (have, channels) == (3, 1):
        return tf.image.rgb_to_grayscale(image)
    raise ValueError(f"cannot turn {have}-channel images into {channels}-channel ones")


def finish(batch, *, mean: np.ndarray, std: np.ndarray):
    """uint8 batch -> {image float32[B,H,W,C] normalized, label int32[B], mask float32[B]}."""
    image = (tf.cast(batch["image"], tf.float32) / 255.0 - mean) / std
    label = tf.cast(batch["label"], tf.int32)
    return {"image": image, "label": label, "mask": tf.ones_like(label, tf.float32)}


def augment_batch(batch, seed, *, flip: bool, distort: bool = False):
    """Random translation of every image (by up to H/8) and, if `flip`, random mirrors;
    if `distort`, also a small random rotation and scaling (handwriting keeps its label).

    Stateless draws seeded by (epoch seed, batch number in the epoch): the parallel map
    stays deterministic, and a resumed epoch augments exactly as the interrupted one did.
    """
    move_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    move = _random_affine if distort else _random_shift
    batch = {**batch, "image": move(batch["image"], move_seed)}
    if flip:
        image = batch["image"]
        mirror = tf.random.stateless_uniform([tf.shape(image)[0]], flip_seed) < 0.5
        batch["image"] = tf.where(mirror[:, None, None, None], tf.reverse(image, [2]), image)
    return batch


def _max_shift(height: int) -> int:
    return max(2, height // 8)


def _random_shift(image, seed):
    """Whole-pixel shifts (pad by H/8, random crop back): one vectorized gather."""
    size, height, width = tf.shape(image)[0], image.shape[1], image.shape[2]
    pad = _max_shift(height)
    padded = tf.pad(image, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    corner = tf.random.stateless_uniform([size, 2], seed, 0, 2 * pad + 1, tf.int32)
    rows = corner[:, :1] + tf.range(height)[None, :]         # [B, H]
    cols = corner[:, 1:] + tf.range(width)[None, :]          # [B, W]
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2,
                     batch_dims=1)


MAX_ROTATION_DEGREES = 10.0
MAX_SCALE_CHANGE = 0.1


def _random_affine(image, seed):
    """Per image: rotation by up to 10 degrees and scaling by up to 10% about the
    centre, then a shift by up to H/8 pixels; bilinear, zeros outside (one op)."""
    size, height, width = tf.shape(image)[0], image.shape[1], image.shape[2]
    pad = float(_max_shift(height))
    draws = tf.random.stateless_uniform([size, 4], seed, -1.0, 1.0)
    angle = draws[:, 0] * (MAX_ROTATION_DEGREES * np.pi / 180)
    scale = 1.0 + draws[:, 1] * MAX_SCALE_CHANGE
    shift_x, shift_y = draws[:, 2] * pad, draws[:, 3] * pad
    # Output pixel (x, y) reads input A @ ((x, y) - centre - shift) + centre, where A
    # undoes the rotation and the scaling.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    cx, cy = (width - 1) / 2, (height - 1) / 2
    ox, oy = cx + shift_x, cy + shift_y
    transforms = tf.stack([cos, sin, cx - cos * ox - sin * oy,
                           -sin, cos, cy + sin * ox - cos * oy,
                           tf.zeros_like(cos), tf.zeros_like(cos)], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image, transforms=transforms, output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
