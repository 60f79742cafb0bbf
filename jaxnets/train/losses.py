"""Losses and metrics, with masks: one label per example, or one per step.

The batch says which: a batch with `targets: <int32>[batch, time]` (and
`target_mask`) is scored at every step, the lecture's many-to-many loss;
otherwise `label: <int32>[batch]` scores one output per example.

A batch may carry `mask: <float32>[batch]` (1 for a real example, 0 for
padding added to fill the last eval batch); every sum below is weighted by
it, so padding never changes a loss or an accuracy.

Metrics follow CommonLoopUtils: a small pytree of running sums and a count,
merged by addition on device (inside or outside jit) and turned into means
only when read with `compute()`. Adding sums keeps a mean over batches of
different sizes exact; averaging per-batch means would not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct


def batch_mask(batch, batch_size: int) -> jax.Array:
    """`batch['mask']` as float32, or ones when the batch has no mask."""
    if "mask" not in batch:
        return jnp.ones((batch_size,), jnp.float32)
    mask = jnp.asarray(batch["mask"], jnp.float32)
    if mask.shape != (batch_size,):
        raise ValueError(f"the batch's mask has shape {mask.shape}, but it must be "
                         f"[batch] = ({batch_size},): one weight per example")
    return mask


def _class_ids(batch, key: str, ndim: int, what: str) -> jax.Array:
    """`batch[key]` as int32, after checking it holds integer ids of the right rank
    (shapes and dtypes are static, so this runs once, when the step is traced)."""
    if key not in batch:
        raise ValueError(f"the batch has no {key!r} ({what}); its keys: "
                         f"{', '.join(sorted(batch))}")
    ids = batch[key]
    dtype = getattr(ids, "dtype", None)
    if dtype is None or not (jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
        raise ValueError(f"the batch's {key!r} has dtype {dtype}: it must hold integer "
                         f"class ids ({what}), e.g. {key}.astype(np.int32)")
    if len(ids.shape) != ndim:
        raise ValueError(f"the batch's {key!r} has shape {tuple(ids.shape)}: it must be "
                         f"{what}")
    return jnp.asarray(ids, jnp.int32)


def _check_outputs(outputs) -> None:
    if not hasattr(outputs, "ndim"):
        raise TypeError(f"the model returned a {type(outputs).__name__}: its apply must "
                        "return one array of logits, [batch, classes] (or [batch, time, "
                        "classes] for a batch with `targets`)")


@struct.dataclass
class Metrics:
    """Running sums: `loss_sum` and `correct` over `count` scored outputs (the sum of
    their mask: examples, or tokens for a per-step loss), and `examples` (real rows)."""

    loss_sum: jax.Array
    correct: jax.Array
    count: jax.Array
    examples: jax.Array

    @classmethod
    def zeros(cls) -> "Metrics":
        z = jnp.zeros((), jnp.float32)
        return cls(z, z, z, z)

    def merge(self, other: "Metrics") -> "Metrics":
        return jax.tree.map(jnp.add, self, other)

    def compute(self) -> dict[str, float]:
        """Means as Python floats (reads the device: call only when logging). "scored" is
        what loss and accuracy average over: the examples, or their real tokens."""
        loss_sum, correct, count, examples = (float(x) for x in jax.device_get(
            (self.loss_sum, self.correct, self.count, self.examples)))
        return {"loss": loss_sum / max(count, 1.0), "accuracy": correct / max(count, 1.0),
                "examples": int(round(examples)), "scored": int(round(count))}


def task_loss(outputs, batch):
    """(mean loss, Metrics sums) of a batch: per step if it has `targets`, else per example."""
    _check_outputs(outputs)
    if "targets" in batch:
        return sequence_loss(outputs, batch)
    return classification_loss(outputs, batch)


def softmax_cross_entropy(logits, labels, mask):
    """Masked softmax cross-entropy.

    Args:
      logits: <float>[batch, classes] unnormalised class scores.
      labels: <int>[batch] class indices.
      mask: <float32>[batch], 0 for padding rows.

    Returns:
      (mean loss over real rows, Metrics sums). The mean divides by
      max(sum(mask), 1) so an all-padding batch gives 0, not NaN. A real row whose
      label is not a class (outside 0..classes-1) makes the loss NaN, which stops
      training (the loop's NaN guard) where a gather would silently clip or wrap it.
    """
    logits = logits.astype(jnp.float32)  # a bf16 model still gets an f32 loss
    # Padding rows' scores replaced, not only their losses: an Inf there would otherwise
    # make the gradient NaN (a zero cotangent times softmax(Inf)) and stop the run.
    scored = jnp.where((mask > 0)[:, None], logits, 0.0)
    per_example = optax.softmax_cross_entropy_with_integer_labels(scored, labels)
    per_example = jnp.where((labels >= 0) & (labels < logits.shape[-1]), per_example, jnp.nan)
    per_example = jnp.where(mask > 0, per_example, 0.0)  # padding may hold garbage
    count = jnp.sum(mask)
    loss_sum = jnp.sum(per_example * mask)
    correct = jnp.sum((jnp.argmax(logits, -1) == labels) * mask)
    mean = loss_sum / jnp.maximum(count, 1.0)
    return mean, Metrics(loss_sum=loss_sum, correct=correct, count=count, examples=count)


def classification_loss(logits, batch):
    """The loss of a batch dict with `label` (and optionally `mask`)."""
    labels = _class_ids(batch, "label", 1, "[batch]: one class id per example, or "
                        "`targets` [batch, time] for a per-step loss")
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"the model returned outputs of shape {logits.shape}, but a classification "
            f"loss needs logits <float>[batch={labels.shape[0]}, classes]: make the "
            "model's apply return one row of class scores per example, and give every "
            "array of a batch the same number of rows (the batch's shapes: "
            f"{ {k: tuple(jnp.shape(v)) for k, v in batch.items()} })")
    return softmax_cross_entropy(logits, labels, batch_mask(batch, labels.shape[0]))


def sequence_loss(logits, batch):
    """The lecture's many-to-many loss: a cross-entropy at every real step, summed
    over steps and averaged over all real tokens of the batch.

    Args:
      logits: <float>[batch, time, vocab] scores for each step's next token.
      batch: `targets: <int>[batch, time]`, `target_mask: <float>[batch, time]`
        (1 on real steps) and optionally the per-example `mask`.

    Returns:
      (mean loss per token, Metrics of token sums: accuracy is per token; `examples`
      counts the real sequences).
    """
    targets = _class_ids(batch, "targets", 2, "[batch, time]: the next token at each step")
    if "target_mask" not in batch or jnp.shape(batch["target_mask"]) != targets.shape:
        raise ValueError(
            f"a batch with targets {targets.shape} needs a target_mask of the same shape "
            "(1 on real steps, 0 on padding); got "
            f"{jnp.shape(batch['target_mask']) if 'target_mask' in batch else 'none'}")
    if logits.shape[:2] != targets.shape:
        raise ValueError(
            f"the model returned outputs of shape {logits.shape}, but a per-step loss needs "
            f"<float>[batch, time] + [vocab] = {targets.shape} + [vocab] to match `targets`")
    rows = batch_mask(batch, targets.shape[0])
    weights = jnp.asarray(batch["target_mask"], jnp.float32) * rows[:, None]
    logits = logits.reshape(-1, logits.shape[-1])
    mean, metrics = softmax_cross_entropy(logits, targets.reshape(-1), weights.reshape(-1))
    return mean, metrics.replace(examples=jnp.sum(rows))
