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
    if "mask" in batch:
        return jnp.asarray(batch["mask"], jnp.float32)
    return jnp.ones((batch_size,), jnp.float32)


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
      max(sum(mask), 1) so an all-padding batch gives 0, not NaN.
    """
    logits = logits.astype(jnp.float32)  # a bf16 model still gets an f32 loss
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    per_example = jnp.where(mask > 0, per_example, 0.0)  # padding may hold garbage
    count = jnp.sum(mask)
    loss_sum = jnp.sum(per_example * mask)
    correct = jnp.sum((jnp.argmax(logits, -1) == labels) * mask)
    mean = loss_sum / jnp.maximum(count, 1.0)
    return mean, Metrics(loss_sum=loss_sum, correct=correct, count=count, examples=count)


def classification_loss(logits, batch):
    """The loss of a batch dict with `label` (and optionally `mask`)."""
    labels = jnp.asarray(batch["label"], jnp.int32)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"the model returned outputs of shape {logits.shape}, but a classification "
            f"loss needs logits <float>[batch={labels.shape[0]}, classes]: make the "
            "model's apply return one row of class scores per example")
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
    targets = jnp.asarray(batch["targets"], jnp.int32)
    if logits.shape[:2] != targets.shape:
        raise ValueError(
            f"the model returned outputs of shape {logits.shape}, but a per-step loss needs "
            f"<float>[batch, time] + [vocab] = {targets.shape} + [vocab] to match `targets`")
    rows = batch_mask(batch, targets.shape[0])
    weights = jnp.asarray(batch["target_mask"], jnp.float32) * rows[:, None]
    logits = logits.reshape(-1, logits.shape[-1])
    mean, metrics = softmax_cross_entropy(logits, targets.reshape(-1), weights.reshape(-1))
    return mean, metrics.replace(examples=jnp.sum(rows))
