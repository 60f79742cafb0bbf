"""Does a second loop over time use the second core? One program against two devices.

    python experiments/benchmarks/rnn_loops.py [--reps=15]

The forward recurrence h_t = tanh(h_{t-1} W + x_t) of the rnn workload's sizes (T=200,
batch 64, H=128), three ways, interleaved in one process whose CPU is split into two
devices (`runtime_options.split_host(2)`):

  one loop       the whole batch in one lax.scan, on one device
  two loops      the batch in halves, two independent scans in one program
  two devices    the halves on two devices (shard_map), one scan each

Used for experiments/benchmarks/rnn_step.md, round 13.
"""

from __future__ import annotations

import sys
import time


def _arg(name, default):
    return next((type(default)(a.split("=", 1)[1]) for a in sys.argv[1:]
                 if a.startswith(f"--{name}=")), default)


def main() -> None:
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    runtime_options.tune_host()
    runtime_options.split_host(2)
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jax.sharding import Mesh, NamedSharding  # pylint: disable=g-import-not-at-top
    from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top

    from jaxnets.benchmark import timing  # pylint: disable=g-import-not-at-top

    steps, batch, hidden = 200, 64, 128
    rng = np.random.default_rng(0)
    W = jnp.asarray(rng.normal(size=(hidden, hidden)).astype(np.float32) / 12)
    xp = jnp.asarray(rng.normal(size=(steps, batch, hidden)).astype(np.float32))

    def loop(W, xp):
        def body(h, x):
            h = jnp.tanh(h @ W + x)
            return h, h
        return jax.lax.scan(body, jnp.zeros_like(xp[0]), xp)[1]

    def halves(W, xp):
        return jnp.concatenate([loop(W, xp[:, :batch // 2]), loop(W, xp[:, batch // 2:])], 1)

    mesh = Mesh(np.array(jax.devices()[:2]), ("batch",))
    split = jax.jit(jax.shard_map(loop, mesh=mesh, in_specs=(P(), P(None, "batch")),
                                  out_specs=P(None, "batch")))
    arms = {"one loop": (jax.jit(loop), (W, xp)), "two loops": (jax.jit(halves), (W, xp)),
            "two devices": (split, (jax.device_put(W, NamedSharding(mesh, P())),
                                    jax.device_put(xp, NamedSharding(mesh, P(None, "batch")))))}
    want = np.asarray(arms["one loop"][0](W, xp))
    for name, (fn, args) in arms.items():
        np.testing.assert_array_equal(np.asarray(fn(*args)), want, err_msg=name)

    def runner(fn, args):
        def run(n):
            for _ in range(n):
                out = fn(*args)
            out.block_until_ready()
        return run

    load_start = timing.load_average()
    stats = timing.interleaved({n: runner(*a) for n, a in arms.items()},
                               {n: 5 for n in arms}, reps=_arg("reps", 15))
    machine = timing.machine()
    print(f"command: python experiments/benchmarks/rnn_loops.py {' '.join(sys.argv[1:])}")
    print(f"{machine['date']}; {machine['cpu']}, {machine['cpu_cores']} cores; load average "
          f"{load_start} at the start, {timing.load_average()} at the end; the three give "
          f"the same states bit for bit")
    print()
    print("| arm | ms per forward loop (median) | one loop / arm |")
    print("|---|---|---|")
    for name, stat in stats.items():
        print(f"| {name} | {stat.median * 1e3:.2f} | "
              f"{stats['one loop'].median / stat.median:.2f}x |")


if __name__ == "__main__":
    main()
