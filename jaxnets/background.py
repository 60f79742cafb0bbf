"""A host thread that runs an iterator a few items ahead of its consumer.

The training thread's `next()` then only takes a ready item from a queue, while the
producer (tf.data's numpy conversion, or numpy gathers of `ArrayData`) works alongside
the step that XLA runs. Used by both input paths (data/pipeline.py, data/arrays.py) and
by the placement of batches on devices (train/placement.py); no TF, no JAX.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any


def background(iterator: Iterator[Any], size: int = 3) -> Iterator[Any]:
    """The items of `iterator`, produced by a host thread up to `size` ahead, in order.

    The consumer's `next()` takes a ready item (or waits for one); an exception of the
    producer is raised there, after the items before it. Closing or dropping the
    returned iterator stops the thread at its next item.
    """
    return _Background(iter(iterator), size)


class _Background:
    _DONE = object()

    def __init__(self, iterator: Iterator[Any], size: int):
        self._items: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._finished = False
        threading.Thread(target=self._produce, args=(iterator, self._items, self._stop),
                         name="jaxnets-host-prefetch", daemon=True).start()

    @classmethod
    def _produce(cls, iterator, items: queue.Queue, stop: threading.Event) -> None:
        def put(item) -> bool:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for item in iterator:
                if not put(item):
                    return
            put(cls._DONE)
        except BaseException as e:  # noqa: BLE001 - raised in the consumer, in order
            put(_Failure(e))

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        item = self._items.get()
        if item is self._DONE or isinstance(item, _Failure):
            self._finished = True
            self._stop.set()
            if item is self._DONE:
                raise StopIteration
            raise item.error
        return item

    def close(self) -> None:
        self._finished = True
        self._stop.set()

    def __del__(self):
        self._stop.set()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error
