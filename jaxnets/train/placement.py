"""Every device-placement decision of jaxnets lives here (the input pipeline never places data;
joining several processes is jaxnets/distributed.py).

Two strategies train the same pure `train_step`/`eval_step` (jaxnets/train/steps.py) on
several devices; the loop talks only to the `Strategy` interface, so moving from one to the
other changes one config field (`parallel`):

  pmap      `jax.pmap` over the axis `AXIS`: the state is replicated as a stack with one copy
            per device (leading axis = local devices), each batch is split into one slice per
            device, gradients and metrics are summed over `AXIS` with `lax.psum` inside the
            step (a count-weighted `pmean`), and each device draws dropout from the step's key
            folded with its `lax.axis_index`. BatchNorm statistics are per device, averaged
            with `lax.pmean` after each step. With steps_per_call = k > 1 each device gets
            its slice of each of the k stacked batches and scans over them (`train_steps`),
            the collectives running inside every step: the k-step program gives what k
            one-step calls give.
  sharding  `jax.jit` on a `Mesh` with `NamedSharding`: the state is one array replicated on
            every device, the batch is split along `AXIS`, and XLA inserts the collectives.
            The program is the one-device program on the global batch, so it gives the
            one-device result (dropout and BatchNorm included) whatever the device count.

Both give the parameters of one-device training on the same global batches (to float
rounding) for a deterministic model. With several processes (jaxnets/distributed.py), each
process feeds its own batch (`jax.make_array_from_process_local_data` for sharding, the local
devices' slices for pmap); the global batch is their concatenation in process order.

Host -> device copies are made ahead by a host thread (`prefetch_to_device`,
`Strategy.prefetch`): while the loop works on batch t, batches t+1, t+2 are being placed.
On one CPU device the batches stay numpy: the step takes them as they are.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnets import runtime_options
from jaxnets.background import background
from jaxnets.data.contract import pad_to_multiple
from jaxnets.train.config import PARALLEL as STRATEGIES
from jaxnets.train.config import ConfigError
from jaxnets.train.inputs import EPOCH_END
from jaxnets.train.steps import eval_step, train_step, train_steps

AXIS = "batch"  # the one mesh / pmap axis: data parallelism


# -- devices -----------------------------------------------------------------------------


def select_devices(num_devices: int = 0) -> list[jax.Device]:
    """The devices a run uses: the first `num_devices` (0 = all) local ones of every process,
    ordered by process, so process p's rows of a global batch come p-th."""
    local = jax.local_devices()
    if num_devices < 0 or num_devices > len(local):
        have = _count(len(local), f"{local[0].platform} device")
        raise ConfigError(f"num_devices={num_devices}, but this process has {have}: use "
                          f"1..{len(local)}, or 0 for all of them")
    count = num_devices or len(local)
    by_process = collections.defaultdict(list)
    for device in jax.devices():
        by_process[device.process_index].append(device)
    return [d for p in sorted(by_process) for d in by_process[p][:count]]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def check_batch_size(batch_size: int, num_devices: int) -> None:
    """ConfigError unless a batch of `batch_size` rows splits evenly over `num_devices`."""
    if batch_size % num_devices:
        lower = batch_size - batch_size % num_devices
        options = f"{lower} or {lower + num_devices}" if lower else f"{num_devices}"
        raise ConfigError(
            f"batch size {batch_size} does not split evenly over {num_devices} devices "
            f"({batch_size}/{num_devices} = {batch_size / num_devices:g} per device): use a "
            f"multiple of {num_devices} (e.g. {options}), or change num_devices")


@dataclasses.dataclass(frozen=True)
class Stacked:
    """`steps_per_call` consecutive batches stacked on a new leading axis: the input of
    one `train_steps` call."""
    batch: dict

    def first(self) -> dict:
        """The group's first batch (e.g. to shape a state)."""
        return {key: value[0] for key, value in self.batch.items()}


def stack_batches(batches: Iterable[Any], k: int) -> Iterator[Any]:
    """Consecutive batches as `Stacked` groups of `k` (steps_per_call = k).

    EPOCH_END passes through. A group that cannot fill up (EPOCH_END, a batch shaped
    unlike the group's, e.g. a smaller last batch, or the end of `batches`) comes out as
    its single batches: the one-step program runs them, where a k-step program would be
    compiled again for every shorter length.
    """
    chunk = []
    for item in batches:
        if item is EPOCH_END or (chunk and _shapes(item) != _shapes(chunk[0])):
            yield from chunk
            chunk = []
        if item is EPOCH_END:
            yield item
            continue
        chunk.append(item)
        if len(chunk) == k:
            yield Stacked(_stack(chunk))
            chunk = []
    yield from chunk


def _shapes(batch) -> dict:
    return {key: np.shape(value) for key, value in batch.items()}


def _stack(batches: list) -> dict:
    return {key: np.stack([np.asarray(b[key]) for b in batches]) for key in batches[0]}


# -- prefetch ----------------------------------------------------------------------------


def prefetch_to_device(iterator: Iterable[Any], size: int = 2,
                       sharding: jax.sharding.Sharding | None = None) -> Iterator[Any]:
    """Yields the items of `iterator` (pytrees of numpy arrays) as device arrays.

    Args:
      iterator: host batches, e.g. `Dataset.train_epoch(epoch)`.
      size: batches placed ahead of the caller (2 = double buffering). Each costs one
        batch of device memory.
      sharding: where to put each array (e.g. a `NamedSharding` over a mesh); default: the
        default device.
    """
    return prefetch(iterator, lambda item: jax.device_put(item, sharding), size)


def prefetch(iterator: Iterable[Any], put: Callable[[Any], Any], size: int = 2) -> Iterator[Any]:
    """`put(item)` for each item, done by a host thread `size` items ahead of the caller.

    The thread takes placing off the training loop's thread: on a GPU one small batch's
    `device_put` costs ~0.5 ms on the host, which stalled a 1.5 ms step by 46%
    (rnn_translate on an H200); here it overlaps the step. An error raised by `iterator`
    is raised only when the caller asks for that item, after every item before it: a
    consumer never loses a batch it was owed.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    return background((put(item) for item in iterator), size)


# -- strategies --------------------------------------------------------------------------


class Strategy:
    """How the loop places the state and the batches, and how it compiles the steps.

    The state lives on the devices in the strategy's own layout (`put_state`); checkpoints
    and `fit`'s result hold one replicated copy (`unreplicate`), the same for every strategy,
    so a run may resume under another strategy or device count.

    Args:
      num_devices: devices per process (0 = all local devices).
      steps_per_call: training steps per call of the compiled program (k > 1: training
        batches arrive stacked k at a time, see `stack_batches` and `train_steps`).
    """

    name = ""
    host_is_device = False  # batches stay numpy (see ShardingStrategy)

    def __init__(self, num_devices: int = 0, steps_per_call: int = 1):
        if steps_per_call < 1:
            raise ConfigError(f"steps_per_call must be >= 1, got {steps_per_call}")
        self.steps_per_call = steps_per_call
        self.devices = select_devices(num_devices)
        me = jax.process_index()
        self.local_devices = [d for d in self.devices if d.process_index == me]
        self.num_local = len(self.local_devices)
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    def describe(self) -> str:
        """e.g. 'pmap on 4 cpu devices' or 'sharding on 16 gpu devices in 2 processes'."""
        processes = jax.process_count()
        where = f" in {processes} processes" if processes > 1 else ""
        devices = _count(len(self.devices), f"{self.devices[0].platform} device")
        return f"{self.name} on {devices}{where}"

    def check_batch(self, batch_size: int) -> None:
        """ConfigError unless a per-process batch of `batch_size` splits over the devices."""
        check_batch_size(batch_size, self.num_local)

    # -- state ----------------------------------------------------------------------------

    def put_state(self, state):
        """The state (on any device) placed for training."""
        host = jax.device_get(state)
        return self.replicate(jax.tree.map(
            lambda x: jax.make_array_from_callback(np.shape(x), self.replicated,
                                                   lambda index: np.asarray(x)[index]), host))

    def replicate(self, state):
        """A one-copy state (`unreplicate`'s layout) in this strategy's training layout."""
        return state

    def unreplicate(self, state):
        """One copy of the state, replicated on every device (for checkpoints and results)."""
        return state

    def restore_target(self, abstract):
        """`abstract` (ShapeDtypeStructs) with the layout that `unreplicate` gives."""
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                           sharding=self.replicated), abstract)

    # -- batches ----------------------------------------------------------------------------

    def put_batch(self, batch: dict, stacked: bool = False) -> dict:
        """The batch (`stacked`: k batches on a leading axis) in the step's layout."""
        raise NotImplementedError

    def examples(self, batch: dict, stacked: bool = False) -> int:
        """Rows of a placed batch (of all its batches when `stacked`), summed over processes."""
        raise NotImplementedError

    def prefetch(self, batches: Iterable[dict], *, evaluation: bool = False, size: int = 2):
        """The batches placed on the devices, `size` ahead. A batch that does not split
        over the devices (evaluation's last, a short last batch in a list of training
        batches) gets mask-0 rows up to a multiple of the device count: the masked loss
        and metrics are those of its real rows.

        Training batches (not `evaluation`) come as `Stacked` groups of `steps_per_call` when that
        is > 1 (`stack_batches`); the host thread stacks them, so the loop waits once per
        call, not per step. EPOCH_END (the loop's marker between epochs) passes through.
        """
        stacked = not evaluation and self.steps_per_call > 1
        if stacked:
            batches = stack_batches(batches, self.steps_per_call)

        def put(batch):
            if batch is EPOCH_END:
                return batch
            if isinstance(batch, Stacked):
                self.check_batch(np.shape(next(iter(batch.batch.values())))[1])
                return Stacked(self.put_batch(batch.batch, stacked=True))
            return self.put_batch(pad_to_multiple(batch, self.num_local))
        if self.host_is_device and not stacked:  # placing is free: a thread hop would only cost
            return (put(batch) for batch in batches)
        return prefetch(batches, put, size)

    # -- steps ------------------------------------------------------------------------------

    def compile_train(self, stacked: bool | None = None) -> Callable:
        """(state, placed batch) -> (state, Metrics sums, finite), the state donated.
        `stacked` (default: steps_per_call > 1): the program of a `Stacked` batch, whose
        `finite` has one flag per step; `stacked=False`: the one-step program."""
        raise NotImplementedError

    def compile_eval(self) -> Callable:
        """(state, placed batch) -> Metrics sums over every device's rows."""
        raise NotImplementedError


class PmapStrategy(Strategy):
    """`jax.pmap` over `AXIS`: one state copy per local device, one batch slice per device."""

    name = "pmap"

    def __init__(self, num_devices: int = 0, steps_per_call: int = 1):
        super().__init__(num_devices, steps_per_call)
        self.stacked = NamedSharding(Mesh(np.array(self.local_devices), (AXIS,)),
                                     PartitionSpec(AXIS))
        all_local = self.num_local == len(jax.local_devices())
        self._pmap = functools.partial(jax.pmap, axis_name=AXIS,
                                       devices=None if all_local else self.devices)

    def replicate(self, state):
        def stack(x):  # [...] replicated -> [devices, ...], no copy between devices
            parts = _shards_by_device(x)
            return jax.make_array_from_single_device_arrays(
                (self.num_local, *x.shape), self.stacked,
                [parts[d][None] for d in self.local_devices])
        return jax.tree.map(stack, state)

    def unreplicate(self, state):
        def unstack(x):  # [devices, ...] -> [...] replicated
            parts = _shards_by_device(x)
            return jax.make_array_from_single_device_arrays(
                x.shape[1:], self.replicated,
                [parts[d].reshape(x.shape[1:]) for d in self.local_devices])
        return jax.tree.map(unstack, state)

    def put_batch(self, batch: dict, stacked: bool = False) -> dict:
        def split(x):  # [batch, ...] -> [devices, batch / devices, ...]
            x = np.asarray(x)
            return x.reshape(self.num_local, x.shape[0] // self.num_local, *x.shape[1:])

        def split_stacked(x):  # [k, batch, ...] -> [devices, k, batch / devices, ...]
            x = np.asarray(x)
            return x.reshape(x.shape[0], self.num_local, x.shape[1] // self.num_local,
                             *x.shape[2:]).swapaxes(0, 1)
        return jax.device_put(jax.tree.map(split_stacked if stacked else split, batch),
                              self.stacked)

    def examples(self, batch: dict, stacked: bool = False) -> int:
        shape = next(iter(batch.values())).shape
        rows = shape[0] * shape[1] * (shape[2] if stacked else 1)
        return rows * jax.process_count()

    def compile_train(self, stacked: bool | None = None) -> Callable:
        if stacked is None:
            stacked = self.steps_per_call > 1
        # Each device scans its k slices (train_steps); every step's psum keeps the copies equal.
        step = train_steps if stacked else train_step
        return self._pmap(functools.partial(step, axis_name=AXIS),
                          donate_argnums=0, out_axes=(0, None, None))

    def compile_eval(self) -> Callable:
        return self._pmap(functools.partial(eval_step, axis_name=AXIS), out_axes=None)


class ShardingStrategy(Strategy):
    """`jax.jit` with `NamedSharding`: the state replicated, the batch split along `AXIS`."""

    name = "sharding"

    def __init__(self, num_devices: int = 0, steps_per_call: int = 1):
        super().__init__(num_devices, steps_per_call)
        self.split = NamedSharding(self.mesh, PartitionSpec(AXIS))
        self.split_stacked = NamedSharding(self.mesh, PartitionSpec(None, AXIS))
        # One CPU device is the host itself: the jitted step takes numpy in ~5 us, where
        # placing the batch first costs ~100 us of dispatch per batch (a stall of small steps).
        self.host_is_device = (jax.process_count() == 1 and len(self.devices) == 1
                               and self.devices[0].platform == "cpu")

    def put_batch(self, batch: dict, stacked: bool = False) -> dict:
        batch = {k: np.asarray(v) for k, v in batch.items()}
        if self.host_is_device:
            return batch
        return jax.make_array_from_process_local_data(
            self.split_stacked if stacked else self.split, batch)

    def examples(self, batch: dict, stacked: bool = False) -> int:
        shape = np.shape(next(iter(batch.values())))
        return shape[0] * shape[1] if stacked else shape[0]

    def compile_train(self, stacked: bool | None = None) -> Callable:
        if stacked is None:
            stacked = self.steps_per_call > 1
        rep = self.replicated
        step, split = ((train_steps, self.split_stacked) if stacked
                       else (train_step, self.split))
        return jax.jit(step, in_shardings=(rep, split), out_shardings=(rep, rep, rep),
                       donate_argnums=0, compiler_options=runtime_options.step_compiler_options())

    def compile_eval(self) -> Callable:
        return jax.jit(eval_step, in_shardings=(self.replicated, self.split),
                       out_shardings=self.replicated)


def _shards_by_device(x: jax.Array) -> dict:
    return {shard.device: shard.data for shard in x.addressable_shards}


def make_strategy(name: str = "auto", num_devices: int = 0,
                  steps_per_call: int = 1) -> Strategy:
    """The strategy `name` ('pmap' or 'sharding') on `num_devices` per process (0 = all),
    taking `steps_per_call` training steps per call.

    'auto' is pmap on several devices and sharding on one, where it is a plain `jax.jit`:
    pmap's per-call overhead costs ~30% per step on a small model on one CPU device.
    On 4 fake CPU devices pmap trained as fast as sharding or faster at the presets' own
    steps_per_call (pmap / sharding over 4 runs: lenet_mnist k=25 1.00-1.14x, rnn_sentiment
    k=37 1.50-1.67x, AlexNet k=1 1.26-1.40x; experiments/benchmarks/pmap.md), so k does
    not change the choice.
    """
    if name == "auto":
        name = "pmap" if len(select_devices(num_devices)) > 1 else "sharding"
    kinds = {"pmap": PmapStrategy, "sharding": ShardingStrategy}
    if name not in kinds:
        raise ConfigError(f"unknown parallel strategy {name!r}; choose one of: "
                          f"{', '.join(STRATEGIES)}")
    return kinds[name](num_devices, steps_per_call)
