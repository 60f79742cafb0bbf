"""Process-wide speed options for XLA on the CPU: the one place they are set.

Call `tune_host()` once at the start of a program that trains or benchmarks, before JAX
starts its backend (the first `jax.devices()` or computation): the training CLI and the
benchmark do, and `jaxnets.train.fit` does on its first call (a script that builds its
model and numpy data first still gets both options; one that ran JAX before gets the
malloc part). What it does, and what was measured and left alone, with the numbers in
experiments/benchmarks/speedups.md:

  * glibc malloc: XLA:CPU allocates each step's temporaries (gradients, activations)
    afresh and frees them at the end. Blocks above glibc's mmap threshold come from
    mmap and go back to the kernel on free; glibc raises the threshold as such blocks
    come and go, but to 32 MiB at most, so a larger one (AlexNet's 151 MB FC6 weight
    gradient) is page-faulted in again every step. With a 1 GiB threshold and no
    trimming, freed blocks stay in the heap and the next step reuses them. Both points
    together, against a process as it starts (`python -m jaxnets.experiments.benchmark
    --sections=host`, fresh processes): AlexNet training 1.18-1.22x; LeNet and the
    RNN, whose blocks stay under the adaptive threshold, within the noise between
    processes (0.77-1.24x and 0.93-1.02x over five runs). The cost: the process keeps
    its peak memory until it exits.
  * XLA:CPU runs each program on the thread that calls it (no async dispatch). With
    async dispatch a program runs, and allocates its buffers, on a thread of XLA's own;
    glibc gives such a thread its own malloc arena, whose heaps grow by 64 MiB at most,
    so a larger block comes from mmap whatever the threshold above, and every step
    page-faulted it in again: AlexNet's 151 MB FC6 weight gradient alone took 40.9 ms
    (6.8 ms from the main thread's heap). Run on the caller: AlexNet's step 431 -> 361
    ms. The caller waits for each program now; the loop's batches are prepared on other
    threads meanwhile (lenet_mnist trains as fast either way). The CPU client reads
    this when JAX starts, hence "before JAX starts". (Making every thread share the main
    arena gave AlexNet the same, but slowed lenet_mnist's tf.data threads ~15%.)
  * XLA_FLAGS: none set. This jaxlib already sends large dots and convolutions to
    YNNPACK; the oneDNN and XNNPACK switches (`--xla_cpu_use_onednn`,
    `--xla_cpu_experimental_xnn_fusion_type`) leave the compiled program unchanged.
    XLA flushes denormals by default (PyTorch needs `torch.set_flush_denormal(True)`).
    What made XLA faster was mostly the shape of the computation (jaxnets/models/cnn.py,
    rnn.py). Two options are given per program instead, where they apply
    (`init_compiler_options`, `step_compiler_options`).
  * `split_host(n)`: the CPU as n XLA devices (`jax_num_cpu_devices`, before JAX starts;
    the config's `host_devices`), so the run trains data-parallel on them (pmap, one
    program per device, each on its own thread). XLA:CPU runs a program's loops on one
    core, one after the other; split, each device runs its slice of the batch through its
    own loops at the same time. The rnn workload (T=200, batch 64) on 2 cores: 1.2x the
    examples/s of one device; rnn_sentiment's own sentences (T=48) and the CNNs gain
    nothing or lose (experiments/benchmarks/rnn_step.md, round 13; pmap.md). Off by
    default.
  * `enable_compilation_cache(path)`: JAX's persistent compilation cache; a second
    run of the same model skips compilation (lenet_mnist, `python` to its first step:
    7.0 s -> 4.7 s; `--sections=startup`). `use_compilation_cache(where)` is what
    every command's --compilation_cache=auto|off|DIR means.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import platform
import sys
import tempfile

_M_TRIM_THRESHOLD = -1   # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30    # blocks below 1 GiB come from the heap and stay there

_tuned: str | None = None   # what tune_host did
_dispatch = ""              # how XLA:CPU runs programs: decided once, when JAX starts


OPT_OUT = "JAXNETS_NO_HOST_TUNING"  # set (to anything) in the environment: tune_host does nothing


def tune_host() -> str:
    """Sets the options above for this process (idempotent); returns what it did."""
    global _tuned, _dispatch
    if _tuned is None and os.environ.get(OPT_OUT):
        _tuned = f"host left as it is ({OPT_OUT} is set)"
    if _tuned is None:
        if not _dispatch:
            _dispatch = _run_on_caller()
        _tuned = f"{_keep_freed_memory()}; {_dispatch}"
    return _tuned


def split_host(devices: int) -> str:
    """The CPU as `devices` XLA devices (0 or 1: as JAX makes them, one unless
    JAX_NUM_CPU_DEVICES says otherwise) for the rest of the process;
    returns what it did. JAX fixes its CPU devices when it starts: after that, a count
    that differs is a ConfigError naming the fix."""
    import jax  # pylint: disable=g-import-not-at-top
    if devices <= 1:
        return "CPU devices as JAX makes them"
    if _jax_started():
        have = len(jax.devices("cpu"))
        if have != devices:
            from jaxnets.train.config import ConfigError  # pylint: disable=g-import-not-at-top
            raise ConfigError(
                f"host_devices={devices}, but JAX started with {have} CPU device(s) before "
                f"jaxnets could split the CPU: set it before anything runs JAX (the "
                f"command line does: --config.host_devices={devices}), or start Python "
                f"with JAX_NUM_CPU_DEVICES={devices} in the environment")
    else:
        jax.config.update("jax_num_cpu_devices", devices)
    return f"CPU as {devices} devices"


def _mallopt():
    """glibc's mallopt, or None elsewhere."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def _keep_freed_memory() -> str:
    mallopt = _mallopt()
    if mallopt is None:
        return "malloc: not glibc, left as is"
    ok = mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) and mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES)
    if not ok:
        return "malloc: mallopt refused the thresholds, left as is"
    return "malloc: freed blocks < 1 GiB kept for reuse (mmap threshold 1 GiB, no trim)"


def _run_on_caller() -> str:
    """XLA:CPU programs run on the calling thread (see above), if JAX has not started."""
    import jax  # pylint: disable=g-import-not-at-top
    if _jax_started():
        return ("XLA:CPU dispatch left async: JAX had started (call tune_host before "
                "JAX starts)")
    try:
        jax.config.update("jax_cpu_enable_async_dispatch", False)  # read by the CPU client
    except AttributeError:  # a JAX without the option
        return "XLA:CPU dispatch left as is (this JAX has no jax_cpu_enable_async_dispatch)"
    return "XLA:CPU runs each program on the calling thread"


def _jax_started() -> bool:
    """Whether JAX has made its backends (clients) already."""
    try:
        from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # a JAX without this check: say nothing
        return False


def init_compiler_options() -> dict | None:
    """XLA options for compiling a model's init on this backend.

    On the CPU, LLVM's level-1 optimisation: each parameter's random draw is its own
    program, ~0.3 s to compile at the default level. Same bits, runs as fast; compiling
    LeNet's init 1.59 -> 0.66 s, AlexNet's 1.85 -> 1.04 s. And XLA:CPU's older fusion
    code generator, which compiles these elementwise draws sooner (the same bits again):
    LeNet's state 0.49 -> 0.35 s, the RNN's 0.39 -> 0.26 s, AlexNet's 0.81 -> 0.51 s.
    (Not for the step: it compiles CNN steps twice as fast too, but slows the RNN's
    step 17 -> 28 ms.)
    """
    return ({"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}
            if _on_cpu() else None)


def step_compiler_options() -> dict | None:
    """XLA options for the training step programs (which donate the state).

    On the CPU, copy insertion with region analysis. Without it XLA:CPU copies a donated
    parameter whenever its update could run while a gradient still reads it (10 for
    AlexNet, FC6's 151 MB kernel among them); with it, the copies go. The same bits;
    steps interleaved in one process: AlexNet 459 -> 434 ms, the RNN 22.4 -> 20.1 ms.
    And LLVM's level-1 optimisation, as for init: the heavy work is in the GEMM and conv
    libraries, so the same bits as fast (AlexNet 348 -> 337 ms), compiled sooner: AlexNet
    2.16 -> 1.73 s, the RNN's 37-step program 1.15 -> 0.72 s, LeNet's 25 0.84 -> 0.66 s.
    """
    return ({"xla_cpu_copy_insertion_use_region_analysis": True,
             "xla_backend_optimization_level": 1} if _on_cpu() else None)


def _on_cpu() -> bool:
    import jax  # pylint: disable=g-import-not-at-top
    return jax.default_backend() == "cpu"


def enable_compilation_cache(path: str | None = None) -> str:
    """Turns on JAX's persistent compilation cache in `path` (default
    ~/.cache/jaxnets/xla/<this CPU>); returns the directory. An OSError if it cannot be
    made or written.

    The default directory is per processor model and instruction set: XLA:CPU compiles
    for the host's features, so a home directory shared by different machines must not
    hand one machine's programs to another.
    """
    import jax  # pylint: disable=g-import-not-at-top

    path = os.path.expanduser(path or default_cache_dir())
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):  # an OSError now, not a warning per program
        pass
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def default_cache_dir() -> str:
    """~/.cache/jaxnets/xla/<this CPU> (see enable_compilation_cache)."""
    return os.path.expanduser(os.path.join("~", ".cache", "jaxnets", "xla",
                                           host_fingerprint()))


def use_compilation_cache(where: str) -> None:
    """What every command's --compilation_cache means: `off`; `auto`, the default
    directory (a home where it cannot be written only loses the cache, with a note);
    or a directory, which must be writable (a ValueError naming the fix)."""
    if where == "off":
        return
    try:
        enable_compilation_cache(None if where == "auto" else where)
    except OSError as e:
        if where != "auto":
            raise ValueError(f"--compilation_cache={where}: cannot create or write in the "
                             f"directory ({e.strerror}); give a writable one or "
                             "--compilation_cache=off") from None
        print(f"note: no compilation cache (cannot write in it: {e.strerror}); "
              "--compilation_cache=DIR gives one", file=sys.stderr)


def host_fingerprint() -> str:
    """'<arch>-<12 hex digits>' of this processor's model and feature flags."""
    described = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            lines = [l for l in f if l.startswith(("model name", "flags", "Features"))]
        described += "".join(sorted(set(lines)))
    except OSError:
        described += platform.processor()
    return f"{platform.machine()}-{hashlib.sha256(described.encode()).hexdigest()[:12]}"
