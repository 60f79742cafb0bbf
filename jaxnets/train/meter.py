"""The input-stall meter: how much of the wall time the trainer spends waiting for its next
batch, with examples/s and an ETA. The training loop and the benchmark both read this one.

The lecture's warning "training can bottleneck on reading data" made measurable:

    batches = StallMeter(dataset.train_epoch(epoch))
    for batch in batches:                    # each next() is timed
        state, metrics = train_step(state, batch)
        batches.add(examples=len(batch["label"]))
    print(f"input stall {batches.fraction:.1%}"); batches.reset()

A fraction near 0 means the pipeline keeps up; near 1 means the device mostly waits for data.
With asynchronous dispatch (JAX), the step returns before the device finishes, so the wait
shows up in whichever `next()` or `block_until_ready` comes first; measure over many steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


class StallMeter:
    """Times each `next()` of `iterator` against the wall time since construction or `reset()`.

    Args:
      iterator: the batches to time; None when the caller times its waits itself and
        reports them with `add(..., wait_seconds=...)`.
      clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, iterator: Iterable[Any] | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self._iterator = None if iterator is None else iter(iterator)
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Starts a new measurement window now (e.g. after each progress line)."""
        self._start = self._clock()
        self.wait_seconds = 0.0  # time spent waiting for batches since the window started
        self.batches = 0         # items delivered since the window started
        self.examples = 0        # examples trained on (`add`)
        self.steps = 0           # training steps (`add`)

    def __iter__(self) -> StallMeter:
        return self

    def __next__(self):
        start = self._clock()
        try:
            item = next(self._iterator)
        finally:  # the final, exhausted next() is waiting time too
            self.wait_seconds += self._clock() - start
        self.batches += 1
        return item

    def add(self, examples: int = 0, steps: int = 1, wait_seconds: float = 0.0) -> None:
        """One call of the step program: `steps` steps on `examples` examples."""
        self.examples += examples
        self.steps += steps
        self.wait_seconds += wait_seconds

    def exclude(self, seconds: float) -> None:
        """Leaves `seconds` of the window out of the wall time (e.g. evaluation)."""
        self._start += seconds

    @property
    def wall_seconds(self) -> float:
        """Wall time since construction or the last `reset()`."""
        return self._clock() - self._start

    @property
    def fraction(self) -> float:
        """Waiting time / wall time in [0, 1]; 0.0 before any time has passed."""
        wall = self.wall_seconds
        return min(1.0, self.wait_seconds / wall) if wall > 0 else 0.0

    def read(self, steps_left: int = 0) -> dict:
        """The window's seconds, examples/s, stall fraction and the ETA of `steps_left`."""
        wall = max(self.wall_seconds, 1e-9)
        return {"seconds": wall, "examples_per_sec": self.examples / wall,
                "stall_fraction": min(1.0, self.wait_seconds / wall),
                "eta_seconds": steps_left * wall / max(self.steps, 1)}

    def __repr__(self) -> str:
        return (f"StallMeter({self.fraction:.1%} of {self.wall_seconds:.2f}s waiting, "
                f"{self.batches} batches)")
