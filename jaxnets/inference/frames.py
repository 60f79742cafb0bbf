"""Frame-level video classification, read at the end of a run: the accuracy on the memory
frames (blank or hidden ones, whose class only the frames before them tell) and a picture
of one test clip with the predicted and the true class under every frame.

Batches are digit_video's (jaxnets/data/digit_video.py): `image` <[B, T, H, W, C]>,
`lengths`, `targets`, `target_mask`, `memory` <[B, T]> and the eval padding's `mask`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.data.digit_video import CLASS_NAMES, NONE


@partial(jax.jit, static_argnums=0)
def _classes(module, params, image, lengths):
    return jnp.argmax(module.apply({"params": params}, image, lengths), axis=-1)


def frame_classes(module, params, batch) -> np.ndarray:
    """<int32>[B, T]: the class the model gives every frame (padded frames too)."""
    return np.asarray(_classes(module, params, batch["image"], batch["lengths"]))


def memory_accuracy(module, params, batches, combine=lambda counts: counts) -> dict:
    """The accuracy on the memory frames of (padded) eval batches; `combine` maps the
    (correct, total) counts first, e.g. to their sums over processes."""
    counts = np.zeros(2, np.int64)
    for batch in batches:
        weight = batch["memory"] * batch["target_mask"] * batch["mask"][:, None]
        hits = frame_classes(module, params, batch) == batch["targets"]
        counts += (int((hits * weight).sum()), int(weight.sum()))
    correct, total = (int(c) for c in combine(counts))
    return {"memory_frame_accuracy": correct / max(total, 1), "memory_frames": total}


def telling_clip(arrays: dict) -> int:
    """The first clip whose memory frames come both before any digit (class NONE) and
    after one (a remembered digit), else the first with any memory frame, else 0."""
    memory = (arrays["memory"] > 0) & (arrays["target_mask"] > 0)  # padding rows: none
    none = memory & (arrays["targets"] == NONE)
    for rows in ((memory & ~none).any(1) & none.any(1), memory.any(1)):
        if rows.any():
            return int(np.argmax(rows))
    return 0


def plot_clip(path: str, frames: np.ndarray, truth, predicted, memory,
              names=CLASS_NAMES, title: str = "") -> None:
    """One clip as a row of frames, `predicted (true)` class names under each, red where
    wrong; memory frames marked above.

    Args:
      frames: <float>[T, H, W, 1] the clip's real frames; truth, predicted, memory: <[T]>.
      names: class id -> name.
    """
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    count = len(frames)
    fig, axes = plt.subplots(1, count, figsize=(0.95 * count, 2.0), squeeze=False)
    for t, ax in enumerate(axes[0]):
        ax.imshow(frames[t, ..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"t={t}" + ("\nmemory" if memory[t] else "\n"), fontsize=8)
        right = predicted[t] == truth[t]
        ax.set_xlabel(f"{names[predicted[t]]}\n({names[truth[t]]})", fontsize=9,
                      color="black" if right else "red")
    fig.suptitle(title or "predicted (true) class of each frame", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_eval_clip(path: str, module, params, batch: dict, title: str = "") -> None:
    """`plot_clip` of an eval batch's `telling_clip`, as the model classifies it (the whole
    batch: the program `memory_accuracy` compiled serves)."""
    i = telling_clip(batch)
    length = int(batch["lengths"][i])
    predicted = frame_classes(module, params, batch)[i, :length]
    plot_clip(path, batch["image"][i, :length], batch["targets"][i, :length], predicted,
              batch["memory"][i, :length], title=title)
