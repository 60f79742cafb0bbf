"""What the machine is, in the lecture's columns: cores, clock, memory (CPU and GPU).

Read from the machine, never assumed: /proc/cpuinfo (cores, threads, the kernel's clock
figure), /sys/devices/system/cpu/cpu0/cpufreq (the maximum clock, where the kernel drives
the frequency), /proc/meminfo (memory), and on a GPU machine JAX's device (its
multiprocessor count) and `nvidia-smi` (memory, maximum SM clock). A figure that cannot be
read is None; in a VM without cpufreq the core clock is unknown (the kernel's "cpu MHz" is
then the time-stamp counter's rate, kept apart as `tsc_mhz`).
"""

from __future__ import annotations

import os
import shutil
import subprocess


def parse_cpuinfo(text: str) -> dict:
    """/proc/cpuinfo -> {"threads", "cores" (None if not said), "mhz", "virtual"}."""
    threads, cores, mhz, virtual = 0, set(), None, False
    record = {}
    for line in text.splitlines() + [""]:
        key, sep, value = line.partition(":")
        if sep:
            record[key.strip()] = value.strip()
            continue
        if "processor" in record:  # a blank line ends one logical CPU's record
            threads += 1
            if "core id" in record:
                cores.add((record.get("physical id", "0"), record["core id"]))
            if mhz is None and "cpu MHz" in record:
                mhz = float(record["cpu MHz"])
            virtual = virtual or "hypervisor" in record.get("flags", "").split()
        record = {}
    return {"threads": threads or None, "cores": len(cores) or None, "mhz": mhz,
            "virtual": virtual}


def parse_meminfo(text: str) -> int | None:
    """/proc/meminfo -> MemTotal in bytes."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            value, unit = line.split(":", 1)[1].split()
            return int(value) * (1024 if unit == "kB" else 1)
    return None


def cpu_facts(proc: str = "/proc", sys_cpu: str = "/sys/devices/system/cpu") -> dict:
    """{"cores", "threads", "usable", "clock_mhz", "clock_kind", "tsc_mhz",
    "memory_bytes"}: clock_kind is "max" (cpufreq), "current" (the kernel's figure on
    bare metal) or None (a VM: the core clock is unknown; tsc_mhz is what the kernel says)."""
    info = parse_cpuinfo(_read(os.path.join(proc, "cpuinfo")) or "")
    max_khz = _read(os.path.join(sys_cpu, "cpu0", "cpufreq", "cpuinfo_max_freq"))
    clock, kind, tsc = None, None, None
    if max_khz and max_khz.strip().isdigit():
        clock, kind = int(max_khz) / 1000, "max"
    elif info["virtual"]:
        tsc = info["mhz"]
    elif info["mhz"]:
        clock, kind = info["mhz"], "current"
    usable = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count())
    return {"cores": info["cores"], "threads": info["threads"] or os.cpu_count(),
            "usable": usable, "clock_mhz": clock, "clock_kind": kind, "tsc_mhz": tsc,
            "memory_bytes": parse_meminfo(_read(os.path.join(proc, "meminfo")) or "")}


def parse_nvidia_smi(text: str) -> list[dict]:
    """`nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader,nounits`
    -> [{"name", "memory_bytes", "max_sm_mhz"}] ("[N/A]" fields -> None)."""
    out = []
    for line in text.strip().splitlines():
        name, memory, clock = (field.strip() for field in line.split(","))
        mib = _number(memory)
        out.append({"name": name, "memory_bytes": int(mib * 2**20) if mib else None,
                    "max_sm_mhz": _number(clock)})
    return out


def _number(field: str) -> float | None:
    return float(field) if field.replace(".", "", 1).isdigit() else None


def gpu_facts() -> list[dict]:
    """Per GPU that JAX sees: {"name", "multiprocessors", "memory_bytes", "max_sm_mhz"}
    (nvidia-smi's figures where it is installed); [] on a machine without one."""
    import jax  # pylint: disable=g-import-not-at-top

    devices = [d for d in jax.devices() if d.platform == "gpu"]
    if not devices:
        return []
    smi = []
    if shutil.which("nvidia-smi"):
        try:
            smi = parse_nvidia_smi(subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm",
                 "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30,
                check=True).stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            smi = []
    facts = []
    for i, device in enumerate(devices):
        extra = smi[i] if len(smi) == len(devices) else {}
        facts.append({"name": device.device_kind,
                      "multiprocessors": getattr(device, "core_count", None),
                      "memory_bytes": extra.get("memory_bytes"),
                      "max_sm_mhz": extra.get("max_sm_mhz")})
    return facts


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
