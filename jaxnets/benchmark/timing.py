"""Timing on a shared, noisy machine: interleaved repetitions, medians, and the machine.

Every comparison runs its contenders in the same process, one after the other within each
repetition (the order rotating), so a burst of load from another job hits all of them; the
table shows the median over repetitions and the spread (min..max).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable

from jaxnets.benchmark import hardware


@dataclasses.dataclass(frozen=True)
class Stat:
    """Seconds per step over repetitions."""

    median: float
    low: float
    high: float
    reps: int

    @classmethod
    def of(cls, seconds: list[float]) -> "Stat":
        return cls(statistics.median(seconds), min(seconds), max(seconds), len(seconds))

    def rate(self, per_step: float) -> float:
        """`per_step` units (examples, FLOPs) per second at the median."""
        return per_step / self.median if self.median > 0 else float("nan")


def interleaved(runners: dict[str, Callable[[int], None]], steps: dict[str, int], *,
                reps: int, warmup: int = 1) -> dict[str, Stat]:
    """Seconds per step of each runner; `runner(n)` runs n steps and waits for them.

    Each repetition runs every runner once for its `steps[name]` steps; the order
    rotates between repetitions.
    """
    names = list(runners)
    for name in names:
        runners[name](warmup)
    seconds = {name: [] for name in names}
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            n = steps[name]
            start = time.perf_counter()
            runners[name](n)
            seconds[name].append((time.perf_counter() - start) / n)
    return {name: Stat.of(s) for name, s in seconds.items()}


def speed_table(stats: dict[str, Stat], per_step: float, reference: str,
                first_column: str = "arm") -> str:
    """A markdown table of `per_step` units per second for each arm (median, spread) and
    its speed over the `reference` arm's."""
    lines = [f"| {first_column} | training examples/s (median) | spread | "
             f"speed / {reference}'s |", "|---|---|---|---|"]
    for name, stat in stats.items():
        lines.append(f"| {name} | {stat.rate(per_step):,.0f} | {per_step / stat.high:,.0f}.."
                     f"{per_step / stat.low:,.0f} | {stats[reference].median / stat.median:.3f}x |")
    return "\n".join(lines)


def steps_for(runner: Callable[[int], None], seconds: float, most: int = 200) -> int:
    """How many steps of `runner` take about `seconds` (one timed step decides)."""
    start = time.perf_counter()
    runner(1)
    one = max(time.perf_counter() - start, 1e-6)
    return max(1, min(most, round(seconds / one)))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the numbers were measured on: CPU, cores (and hardware.py's facts), versions,
    devices, load."""
    import jax  # pylint: disable=g-import-not-at-top

    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for package in ("jaxlib", "flax", "optax", "numpy", "torch", "keras", "tensorflow-cpu"):
        try:  # from the metadata: importing torch here would fix its OpenMP settings early
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu_model(),
        "cpu_facts": hardware.cpu_facts(),
        "gpu_facts": hardware.gpu_facts(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
        "backend": jax.default_backend(),
        "versions": versions,
        "load_average_start": load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
