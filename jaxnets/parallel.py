"""Every device-placement decision of jaxnets lives here (the input pipeline never places data).

For now: double-buffered host -> device prefetch. `jax.device_put` returns as soon as the
copy is queued, so while the train loop works on batch t, batch t+1 (up to t+size-1) is
already on its way; the loop never waits for a host -> device copy it could have hidden.
Same semantics as flax.jax_utils.prefetch_to_device, without its pmap-style sharding.

    for batch in prefetch_to_device(dataset.train_epoch(epoch)):
        state, metrics = train_step(state, batch)
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import jax


def prefetch_to_device(iterator: Iterable[Any], size: int = 2,
                       sharding: jax.sharding.Sharding | None = None) -> Iterator[Any]:
    """Yields the items of `iterator` (pytrees of numpy arrays) as device arrays.

    Args:
      iterator: host batches, e.g. `Dataset.train_epoch(epoch)`.
      size: batches on the device at once: the one the caller holds and size-1 copies
        in flight (2 = double buffering). Each costs one batch of device memory.
      sharding: where to put each array (e.g. a `NamedSharding` over a mesh); default: the
        default device.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    iterator = iter(iterator)
    queue: collections.deque = collections.deque()

    def enqueue(count: int) -> None:
        for item in itertools.islice(iterator, count):
            queue.append(jax.device_put(item, sharding))  # asynchronous copy

    enqueue(size)
    while queue:
        yield queue.popleft()
        enqueue(1)
