"""The lecture's CPU-vs-GPU table, with the devices jaxnets was measured on beside its rows.

The lecture ("GPU and Deep Learning", slide "CPU vs GPU") compares two CPUs and two GPUs
by cores, clock, memory and price. This table quotes those rows cell for cell and adds
the devices measured here: this machine (the run's own figures, or measured by the
`lecture` section itself) and the GPU runs recorded in experiments/benchmarks/gpu/*.json,
with two measured columns the lecture's slide does not have: JAX's GEMM GFLOP/s (the
lecture's "example: matrix multiplication") and AlexNet training images/s (the lecture's
network at 227x227x3, 1000 classes; the batch is given).

A cell is "-" where nothing was measured or recorded, "n/a" where the machine cannot tell
(a VM's core clock). A price is given only where the lecture gives one.

A results dict here is the benchmark's (suite.run) or one read back from its JSON: the
same keys, with dataclasses turned into dicts, so a recorded run fills rows as a live one.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

# The lecture's table, quoted cell for cell (its "<b>CPU</b>" is the kind).
LECTURE = (
    ("CPU", "Intel Core i7-7700k", "4 (8 threads with hyperthreading )", "4.4 GHz",
     "Shared with system", "$339"),
    ("CPU", "Intel Core i7-6950X", "10 (20 threads with hyperthreading )", "3.5 GHz",
     "Shared with system", "$1723"),
    ("GPU", "NVIDIA Titan Xp", "3840", "1.6 GHz", "12 GB GDDR5X", "$1200"),
    ("GPU", "NVIDIA GTX 1070", "1920", "1.68 GHz", "8 GB GDDR5", "$399"),
)


@dataclasses.dataclass(frozen=True)
class DeviceRow:
    kind: str                                  # "CPU" or "GPU"
    name: str
    cores: str = "-"
    clock: str = "-"
    memory: str = "-"
    price: str = "-"
    gemm_gflops: float | None = None           # JAX, best n x n x n product
    alexnet_images_per_sec: float | None = None  # training, jaxnets' step
    alexnet_what: str = ""                     # the workload: shape, classes, batch
    dtype: str = "-"
    source: str = ""


@dataclasses.dataclass(frozen=True)
class Table:
    rows: list[DeviceRow]
    notes: list[str]


def lecture_rows() -> list[DeviceRow]:
    return [DeviceRow(kind, name, cores, clock, memory, price, source="the lecture")
            for kind, name, cores, clock, memory, price in LECTURE]


def _get(o, key):
    """A field of a dataclass (live results) or of its dict (results read from JSON)."""
    return o[key] if isinstance(o, dict) else getattr(o, key)


def gemm_gflops(results, backend: str, dtype: str) -> float | None:
    """JAX's GEMM GFLOP/s on `backend` in `dtype` in `results`, if measured."""
    for g in results.get("gemm") or []:
        if (_get(g, "framework"), _get(g, "backend"), _get(g, "dtype")) == ("jax", backend,
                                                                          dtype):
            return 2.0 * _get(g, "size") ** 3 / _get(_get(g, "stat"), "median") / 1e9
    return None


def alexnet_training(results, dtype: str) -> tuple[float, str] | None:
    """(images/s, the workload's description) of the AlexNet training row in `dtype`."""
    for row in results.get("models") or []:
        if row["name"] == "alexnet" and row["dtype"] == dtype:
            return row["batch_size"] / _get(row["stats"]["jax_train"], "median"), row["what"]
    return None


def measured_rows(results, source: str) -> list[DeviceRow]:
    """The devices of one run: its CPU (AlexNet only if the CPU was the backend) and, on a
    GPU machine, its first GPU."""
    m = results["machine"]
    backend, dtype = m["backend"], results["options"]["dtype"]
    rate, what = alexnet_training(results, dtype) or (None, "")
    if backend == "cpu":
        return [DeviceRow("CPU", m["cpu"], *_cpu_cells(m),
                          gemm_gflops=gemm_gflops(results, "cpu", dtype),
                          alexnet_images_per_sec=rate, alexnet_what=what, dtype=dtype,
                          source=source)]
    facts = (m.get("gpu_facts") or [{}])[0]
    name = facts.get("name") or next(d.split(":", 1)[1] for d in m["devices"]
                                     if d.startswith(f"{backend}:"))
    return [DeviceRow("CPU", m["cpu"], *_cpu_cells(m),  # the host: its GEMM only
                      gemm_gflops=gemm_gflops(results, "cpu", "float32"), dtype="float32",
                      source=source),
            DeviceRow(backend.upper(), name, *_gpu_cells(facts),
                      gemm_gflops=gemm_gflops(results, backend, dtype),
                      alexnet_images_per_sec=rate, alexnet_what=what, dtype=dtype,
                      source=source)]


def _cpu_cells(machine) -> tuple[str, str, str]:
    """(cores, clock, memory) of a run's CPU; a record older than hardware.py has only the
    usable core count."""
    facts = machine.get("cpu_facts")
    if not facts:
        return f"{machine['cpu_cores']} usable", "-", "-"
    threads = facts["threads"]
    cores = str(facts["cores"] or threads)
    if facts["cores"] and threads != facts["cores"]:
        cores += f" ({threads} threads)"
    if facts["usable"] != threads:
        cores += f", {facts['usable']} usable"
    if facts["clock_kind"]:
        clock = f"{facts['clock_mhz'] / 1000:.2f} GHz ({facts['clock_kind']})"
    elif facts["tsc_mhz"]:
        clock = f"n/a (a VM; its TSC: {facts['tsc_mhz'] / 1000:.2f} GHz)"
    else:
        clock = "n/a"
    memory = facts["memory_bytes"]
    return cores, clock, f"{memory / 2**30:.1f} GiB, shared with system" if memory else "-"


def _gpu_cells(facts) -> tuple[str, str, str]:
    """(cores, clock, memory) of a GPU: multiprocessors (not the lecture's CUDA cores: JAX
    counts SMs), nvidia-smi's maximum SM clock and memory."""
    sms, mhz, memory = (facts.get(k) for k in ("multiprocessors", "max_sm_mhz", "memory_bytes"))
    return (f"{sms} SMs" if sms else "-", f"{mhz / 1000:.2f} GHz (max SM)" if mhz else "-",
            f"{memory / 2**30:.0f} GiB" if memory else "-")


def recorded_rows(directory: str, relative_to: str | None = None) -> list[DeviceRow]:
    """The devices of every GPU run recorded as benchmark JSON in `directory`. Records of
    one host CPU on one day give one CPU row (a float32 record's first)."""
    records = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("machine", {}).get("backend") != "gpu":
            continue
        records.append((record["options"]["dtype"] != "float32", path, record))
    rows, hosts = [], set()
    for _, path, record in sorted(records):
        m = record["machine"]
        shown = os.path.relpath(path, relative_to) if relative_to else path
        shown = path if shown.startswith("..") else shown
        for row in measured_rows(record, f"`{shown}`, {m['date']}"):
            host = (row.name, m["date"][:10])
            if row.kind == "CPU" and host in hosts:
                continue
            hosts.add(host)
            rows.append(row)
    return rows


def table(results, records_dir: str | None, relative_to: str | None = None) -> Table:
    """The lecture's rows, this run's devices and the recorded GPU runs, CPUs first."""
    m = results["machine"]
    here = measured_rows(results, f"this machine, {m['date']}, load average "
                         f"{m['load_average_start']}")
    recorded = (recorded_rows(records_dir, relative_to)
                if records_dir and os.path.isdir(records_dir) else [])
    rows = lecture_rows() + here + recorded
    rows = sorted(rows, key=lambda r: r.kind != "CPU")  # stable: CPUs, then the others
    notes = [] if recorded else [f"No recorded GPU run in {records_dir or '(none given)'}."]
    return Table(rows, notes)


def _workload(what: str) -> str:
    """"AlexNet 227x227x3, 1000 classes, batch 16" -> "batch 16"; another size in full."""
    lectures = "AlexNet 227x227x3, 1000 classes, "
    return what[len(lectures):] if what.startswith(lectures) else what


def markdown_lines(lecture: Table) -> list[str]:
    lines = ["## The lecture's CPU vs GPU table, with the devices measured here", "",
             "| | # Cores | Clock Speed | Memory | Price | GEMM GFLOP/s | AlexNet training "
             "images/s | dtype | source |", "|" + "---|" * 9]
    for r in lecture.rows:
        gemm = "-" if r.gemm_gflops is None else f"{r.gemm_gflops:,.0f}"
        alexnet = "-" if r.alexnet_images_per_sec is None else (
            f"{r.alexnet_images_per_sec:,.{0 if r.alexnet_images_per_sec >= 100 else 1}f} "
            f"({_workload(r.alexnet_what)})")
        lines.append(f"| **{r.kind}** ({r.name}) | {r.cores} | {r.clock} | {r.memory} | "
                     f"{r.price} | {gemm} | {alexnet} | {r.dtype} | {r.source} |")
    lines += ["", "The lecture's rows are quoted as its slide gives them (price: its list "
              "prices); it gives no GFLOP/s or images/s. Measured: JAX's GEMM (best n x n x "
              "n product, jaxnets/benchmark/gemm.py) and AlexNet training (the lecture's "
              "AlexNet at 227x227x3, 1000 classes, in jaxnets' training step). GPU cores are "
              "JAX's multiprocessor count (SMs), not the lecture's CUDA cores; float32 on a "
              "GPU is XLA's default precision (TF32 tensor cores). '-': not measured or not "
              "recorded; 'n/a': the machine cannot tell (a VM's core clock).", ""]
    lines += [*lecture.notes, ""] if lecture.notes else []
    return lines
