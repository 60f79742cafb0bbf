"""Greedy decoding over evaluation batches, and sampling: what training's final measures use
(exact match for translation and captioning, sample texts for the language model)."""

from __future__ import annotations

from functools import partial

import jax
import numpy as np


def generation_inputs(batch) -> tuple:
    """The positional `generate` inputs of a decoder batch (before the length)."""
    if "source" in batch:
        return (batch["source"], batch["source_lengths"])
    if "image" in batch:
        return (batch["image"],)
    raise ValueError(f"cannot generate for a batch with keys {sorted(batch)}: "
                     "expected 'source' (translation) or 'image' (captioning)")


@partial(jax.jit, static_argnums=(0, 3))
def _generate(module, params, inputs, length):
    return module.apply({"params": params}, *inputs, length, method=module.generate)


def generate(module, params, batch, length: int) -> np.ndarray:
    """Greedy output ids <int32>[B, length] for a batch of sources or images."""
    return np.asarray(_generate(module, params, generation_inputs(batch), length))


def exact_matches(generated: np.ndarray, targets: np.ndarray, target_mask: np.ndarray):
    """<bool>[B]: the generated ids equal the targets up to and including EOS."""
    same = (generated == targets) | (target_mask == 0)
    return same.all(axis=1)


def exact_match(module, params, batches, combine=lambda counts: counts) -> dict:
    """Exact-match accuracy of greedy decoding over (padded) eval batches; `combine` maps
    the (correct, total) counts first, e.g. to their sums over processes."""
    counts = np.zeros(2, np.int64)
    for batch in batches:
        length = batch["targets"].shape[1]
        hits = exact_matches(generate(module, params, batch, length), batch["targets"],
                             batch["target_mask"])
        real = batch["mask"] > 0
        counts += (int(hits[real].sum()), int(real.sum()))
    correct, total = (int(c) for c in combine(counts))
    return {"exact_match": correct / max(total, 1), "sequences": total}


def sample_text(module, params, symbols, *, count: int = 3, length: int = 200,
                temperature: float = 0.8, seed: int = 0) -> list[str]:
    """Texts sampled from a character language model, each cut at its first EOS."""
    ids = module.apply({"params": params}, jax.random.key(seed), count, length, temperature,
                       method=module.generate)
    return [symbols.decode(row, sep="") for row in np.asarray(ids)]
