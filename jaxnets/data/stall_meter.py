"""Input-stall meter: how much of the wall time a consumer spends waiting for its next batch.

The lecture's warning "training can bottleneck on reading data" made measurable:

    batches = StallMeter(dataset.train_epoch(epoch))
    for batch in batches:
        state, metrics = train_step(state, batch)
        ...
        print(f"input stall {batches.fraction:.1%}"); batches.reset()

A fraction near 0 means the pipeline keeps up; near 1 means the device mostly waits for data.
With asynchronous dispatch (JAX), the step returns before the device finishes, so the wait
shows up in whichever `next()` or `block_until_ready` comes first; measure over many steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class StallMeter(Generic[T]):
    """Wraps an iterator; times each `next()` against the wall time since start or `reset()`."""

    def __init__(self, iterator, clock: Callable[[], float] = time.perf_counter):
        self._iterator: Iterator[T] = iter(iterator)
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Starts a new measurement window now (e.g. after each progress line)."""
        self._start = self._clock()
        self.wait_seconds = 0.0  # time spent inside next() since the window started
        self.batches = 0         # items delivered since the window started

    def __iter__(self) -> StallMeter[T]:
        return self

    def __next__(self) -> T:
        start = self._clock()
        try:
            item = next(self._iterator)
        finally:  # the final, exhausted next() is waiting time too
            self.wait_seconds += self._clock() - start
        self.batches += 1
        return item

    @property
    def wall_seconds(self) -> float:
        """Wall time since construction or the last `reset()`."""
        return self._clock() - self._start

    @property
    def fraction(self) -> float:
        """Waiting time / wall time in [0, 1]; 0.0 before any time has passed."""
        wall = self.wall_seconds
        return min(1.0, self.wait_seconds / wall) if wall > 0 else 0.0

    def __repr__(self) -> str:
        return (f"StallMeter({self.fraction:.1%} of {self.wall_seconds:.2f}s waiting, "
                f"{self.batches} batches)")
