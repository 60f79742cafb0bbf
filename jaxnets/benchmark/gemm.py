"""The lecture's core operation measured: matrix multiplication GFLOP/s per backend.

The peak of a backend is the best median over a few square sizes (2*n^3 FLOPs per
product); it is the yardstick for "fraction of peak" in the model table. PyTorch's
GEMM on the CPU is measured alongside when it is installed (same thread count).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxnets.benchmark import timing


@dataclasses.dataclass(frozen=True)
class GemmResult:
    framework: str      # "jax" or "torch"
    backend: str        # "cpu", "gpu"
    dtype: str
    size: int           # n of the n x n x n product that was fastest
    stat: timing.Stat   # seconds per product

    @property
    def gflops(self) -> float:
        return self.stat.rate(2.0 * self.size ** 3) / 1e9


def sizes_for(backend: str, tiny: bool) -> tuple[int, ...]:
    if tiny:
        return (128,)
    return (4096, 8192) if backend == "gpu" else (1024, 2048)


def jax_gemm(backend: str, dtype: str, sizes, reps: int) -> GemmResult:
    """The fastest of `sizes` for `a @ b` under jit on `backend`."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    device = jax.devices(backend)[0]
    best = None
    for n in sizes:
        rng = np.random.default_rng(n)  # float32 draws: 8192^2 float64 would take seconds
        a, b = (jax.device_put(jnp.asarray(rng.standard_normal((n, n), np.float32), dtype),
                               device) for _ in range(2))
        # Compiled first: otherwise steps_for times the compile and picks one step.
        matmul = jax.jit(lambda x, y: x @ y).lower(a, b).compile()

        def run(steps, matmul=matmul, a=a, b=b):
            out = None
            for _ in range(steps):
                out = matmul(a, b)
            out.block_until_ready()

        steps = timing.steps_for(run, 0.2, most=50)
        stat = timing.interleaved({"gemm": run}, {"gemm": steps}, reps=reps)["gemm"]
        result = GemmResult("jax", backend, dtype, n, stat)
        best = result if best is None or result.gflops > best.gflops else best
    return best


def torch_gemm(dtype: str, sizes, reps: int, threads: int) -> GemmResult | None:
    """PyTorch's CPU GEMM (MKL / oneDNN), or None when torch is not installed."""
    from jaxnets.benchmark import torch_side  # pylint: disable=g-import-not-at-top
    if not torch_side.available():
        return None
    torch = torch_side.setup(threads)
    best = None
    for n in sizes:
        a = torch.randn(n, n).to(getattr(torch, dtype))
        b = torch.randn(n, n).to(getattr(torch, dtype))

        def run(steps, a=a, b=b):
            for _ in range(steps):
                torch.mm(a, b)

        steps = timing.steps_for(run, 0.2, most=50)
        stat = timing.interleaved({"gemm": run}, {"gemm": steps}, reps=reps)["gemm"]
        result = GemmResult("torch", "cpu", dtype, n, stat)
        best = result if best is None or result.gflops > best.gflops else best
    return best


def measure(backends, *, tiny: bool, reps: int, threads: int, with_torch: bool
            ) -> list[GemmResult]:
    """f32 and bf16 GEMM for every backend (JAX), and PyTorch's on the CPU."""
    results = []
    for backend in backends:
        for dtype in ("float32", "bfloat16"):
            results.append(jax_gemm(backend, dtype, sizes_for(backend, tiny), reps))
    if with_torch:
        for dtype in ("float32", "bfloat16"):
            result = torch_gemm(dtype, sizes_for("cpu", tiny), reps, threads)
            if result is not None:
                results.append(result)
    return results
