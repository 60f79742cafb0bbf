"""The batch path: each task is one pure program `(params, *arrays) -> outputs`, jitted
once per run and called on bucketed shapes; the same program is what `export.py` saves.

    classify_text    (params, tokens i32[B, T], lengths i32[B])  -> probs f32[B, C]
    classify_images  (params, images u8[B, H, W, C])              -> probs f32[B, C]
    classify_frames  (params, frames f32[B, T, H, W, C] in [0, 1], lengths i32[B])
                                                                  -> probs f32[B, T, C]
    translate        (params, source i32[B, S], lengths i32[B])   -> (ids i32[B, L], prob f32[B])
    caption          (params, image f32[B, H, W, C] in [0, 1])    -> (ids i32[B, L], prob f32[B])
    sample           (params, seeds i32[B])                       -> ids i32[B, L]

Padding is evaluation's (`contract.pad_rows`): a chunk of n examples is padded with zero
rows (tokens 0, length 0) up to its batch bucket, and text is right-padded with PAD = 0 up
to its width bucket; the models mask padded steps (a padded step leaves the RNN's state
as it was), so an example's answer does not depend on what it was batched with. Buckets:
rows are the next power of two up to `max_batch`, widths the next of 8, 16, 32, ... below
the run's max_length, and max_length itself (for clips: frames); texts and clips are sorted
by length first, so a chunk's width is that of its own longest one. A 48-token run thus has at most 4 widths
and log2(max_batch) + 1 row counts: a bounded set of programs, each compiled once (and
kept in JAX's persistent compilation cache when the caller turns it on).

`prob` of a generated sequence is the model's probability of that whole output (the
product over its tokens up to and including EOS), scored by one teacher-forced pass.
Images enter as uint8 at the model's size and are normalised inside the program, as
training's `images.finish` does: (x / 255 - mean) / std.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.data import contract
from jaxnets.data.sequence_tasks import EOS

MIN_WIDTH = 8


# -- buckets ----------------------------------------------------------------------------

def row_bucket(rows: int, max_batch: int) -> int:
    """The batch size a chunk of `rows` examples is padded to: the next power of two,
    or `max_batch`."""
    return min(1 << max(rows - 1, 0).bit_length(), max_batch)


def width_buckets(max_length: int) -> tuple[int, ...]:
    """Widths a text batch is padded to: 8, 16, 32, ... below max_length, then max_length."""
    widths, width = [], MIN_WIDTH
    while width < max_length:
        widths.append(width)
        width *= 2
    return (*widths, max_length)


def pad_clips(clips: Sequence[np.ndarray], widths: tuple[int, ...],
              ) -> tuple[np.ndarray, np.ndarray]:
    """(frames f32[N, w, H, W, C] zero after each clip's end, lengths i32[N]), w the
    smallest width that holds the longest clip (each at most widths[-1] frames)."""
    lengths = np.fromiter(map(len, clips), np.int32, len(clips))
    width = next(w for w in widths if w >= int(lengths.max(initial=0)))
    frames = np.zeros((len(clips), width, *clips[0].shape[1:]), np.float32)
    for row, clip in enumerate(clips):
        frames[row, :len(clip)] = clip
    return frames, lengths


def pad_sequences(sequences: Sequence[Sequence[int]], widths: tuple[int, ...],
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(tokens i32[N, w] right-padded with 0, lengths i32[N]), w the smallest width that
    holds the longest sequence (each at most widths[-1] long already)."""
    lengths = np.fromiter(map(len, sequences), np.int32, len(sequences))
    longest = int(lengths.max(initial=0))
    width = next(w for w in widths if w >= longest)
    tokens = np.zeros((len(sequences), width), np.int32)
    for row, ids in enumerate(sequences):
        tokens[row, :len(ids)] = ids
    return tokens, lengths


# -- the programs -----------------------------------------------------------------------

def classify_text(module) -> Callable:
    def program(params, tokens, lengths):
        logits = module.apply({"params": params}, tokens, lengths)
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return program


def classify_images(module, mean, std) -> Callable:
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def program(params, images):
        x = (images.astype(jnp.float32) / 255.0 - mean) / std
        logits = module.apply({"params": params}, x)
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return program


def classify_frames(module) -> Callable:
    def program(params, frames, lengths):
        logits = module.apply({"params": params}, frames, lengths)
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return program


def sequence_probability(logits, ids):
    """<f32>[B]: the probability of each row of `ids` under per-step `logits` [B, L, V],
    over its tokens up to and including the first EOS (all L when it has none)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    chosen = jnp.take_along_axis(logp, ids[..., None], axis=-1)[..., 0]
    before_eos = jnp.cumsum(ids == EOS, axis=1) - (ids == EOS)  # EOSs strictly before t
    return jnp.exp(jnp.sum(jnp.where(before_eos == 0, chosen, 0.0), axis=1))


def _teacher_inputs(module, ids):
    """(tokens, lengths) that feed a decoder its own output back: BOS, ids[:-1]."""
    bos = jnp.full((ids.shape[0], 1), module.bos_id, jnp.int32)
    tokens = jnp.concatenate([bos, ids[:, :-1]], axis=1)
    return tokens, jnp.full((ids.shape[0],), ids.shape[1], jnp.int32)


def translate(module, length: int) -> Callable:
    def program(params, source, source_lengths):
        variables = {"params": params}
        ids = module.apply(variables, source, source_lengths, length, method=module.generate)
        logits = module.apply(variables, source, source_lengths, *_teacher_inputs(module, ids))
        return ids, sequence_probability(logits, ids)
    return program


def caption(module, length: int) -> Callable:
    def program(params, image):
        variables = {"params": params}
        ids = module.apply(variables, image, length, method=module.generate)
        logits = module.apply(variables, image, *_teacher_inputs(module, ids))
        return ids, sequence_probability(logits, ids)
    return program


def sample(module, length: int, temperature: float) -> Callable:
    """Row i draws from its own key, jax.random.key(seeds[i]): a text depends on its seed
    only, not on how many were sampled with it."""
    def program(params, seeds):
        def one(seed):
            ids = module.apply({"params": params}, jax.random.key(seed), 1, length,
                               temperature, method=module.generate)
            return ids[0]
        return jax.vmap(one)(seeds)
    return program


# -- running a program over many examples -----------------------------------------------

class Batched:
    """A program jitted once, run over any number of examples in bucketed chunks.

    Args:
      program: `(params, *arrays) -> array or tuple of arrays`, row i of each output
        belonging to row i of the inputs.
      params: the parameters (on the device).
      max_batch: rows per call at most.
    """

    def __init__(self, program: Callable, params, max_batch: int):
        if max_batch < 1:
            raise ValueError(f"batch size {max_batch}: give at least 1")
        self.program, self.params, self.max_batch = jax.jit(program), params, max_batch

    def chunks(self, count: int, chunk: Callable[[np.ndarray], tuple], *,
               order: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, tuple]]:
        """Yields (indices, outputs as numpy arrays of len(indices) rows) for each chunk of
        the examples 0..count-1, taken `max_batch` at a time in `order` (default 0, 1, ...).

        `chunk(indices)` gives the input arrays of those examples. The host prepares
        chunk k + 1 while the device runs chunk k (JAX dispatches asynchronously).
        """
        order = np.arange(count) if order is None else np.asarray(order)
        pending = None
        for start in range(0, count, self.max_batch):
            indices = order[start:start + self.max_batch]
            arrays = dict(enumerate(chunk(indices)))
            padded = contract.pad_rows(arrays, row_bucket(len(indices), self.max_batch))
            result = self.program(self.params, *(padded[i] for i in range(len(arrays))))
            if pending is not None:
                yield _on_host(*pending)
            pending = (indices, result)
        if pending is not None:
            yield _on_host(*pending)

    def __call__(self, count: int, chunk: Callable[[np.ndarray], tuple], *,
                 order: np.ndarray | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, ...]:
        """The outputs for examples 0..count-1 in that order (see `chunks`); `progress(n)`
        hears of each finished chunk of n examples."""
        outputs = None
        for indices, result in self.chunks(count, chunk, order=order):
            if outputs is None:
                outputs = [np.zeros((count, *r.shape[1:]), r.dtype) for r in result]
            for out, r in zip(outputs, result):
                out[indices] = r
            if progress is not None:
                progress(len(indices))
        return tuple(outputs or ())


def _on_host(indices: np.ndarray, result) -> tuple[np.ndarray, tuple]:
    """(indices, the real rows of a program's output(s) as numpy arrays)."""
    result = result if isinstance(result, tuple) else (result,)
    return indices, tuple(np.asarray(r)[:len(indices)] for r in result)
