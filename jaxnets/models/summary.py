"""The lecture's per-layer table: output volume, weights and biases, FLOPs, and XLA's view.

The FLOPs column is the lecture's multiply-add count (H2*W2*F*F*D1*D2 per
conv, in*out per dense). To check it, each conv and dense layer is compiled on
its own, without its bias, and XLA's cost analysis is read: XLA counts the
multiply and the add separately (2 per multiply-add) and, for padded layers,
skips the window taps that fall on the zero padding. So the table shows both
counts: the lecture's, and the multiply-adds on real input, which XLA must
match exactly (x2). Bias adds (H2*W2*D2 per conv, out per dense) are in
neither column.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxnets import conv_arithmetic as ca
from jaxnets.models import cnn


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    kind: str
    output_shape: tuple
    params: int                  # weights + biases
    weights: int                 # the lecture's count, e.g. CONV1 (11x11x3)x96 = 34,848
    flops: int                   # the lecture's multiply-adds
    flops_on_input: int          # multiply-adds that touch real input
    xla_flops: float | None      # XLA's count for the layer alone (2 per multiply-add)

    @property
    def biases(self) -> int:
        return self.params - self.weights

    @property
    def xla_agrees(self) -> bool | None:
        if self.xla_flops is None:
            return None
        return self.xla_flops == 2 * self.flops_on_input


def summarize(layers, input_shape, *, check_xla: bool = True) -> list[Row]:
    """One Row per layer of `layers` applied to `input_shape` (HxWxC)."""
    rows = []
    for layer, in_shape, out_shape in cnn.layer_shapes(layers, input_shape):
        computes = hasattr(layer, "flax_layer")  # CONV and FC; POOL and NORM don't count
        rows.append(Row(
            name=layer.name,
            kind=type(layer).__name__,
            output_shape=out_shape,
            params=layer.params(in_shape),
            weights=layer.weights(in_shape) if computes else 0,
            flops=layer.flops(in_shape),
            flops_on_input=layer.flops_on_input(in_shape) if computes else 0,
            xla_flops=xla_flops(layer, in_shape) if computes and check_xla else None,
        ))
    return rows


def xla_flops(layer, in_shape) -> float:
    """XLA's cost-analysis FLOPs of one example through `layer`'s weights alone."""
    module = layer.flax_layer(use_bias=False)
    x = jax.ShapeDtypeStruct((1, *in_shape), jnp.float32)
    if isinstance(layer, cnn.Dense):
        x = jax.ShapeDtypeStruct((1, x.size), jnp.float32)
    params = jax.eval_shape(module.init, jax.random.key(0), x)
    cost = jax.jit(module.apply).lower(params, x).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX returns one dict per device
        cost = cost[0]
    return float(cost["flops"])


def format_table(rows: list[Row], input_shape, title: str = "") -> str:
    """The table as text, in the lecture's notation, with totals."""
    header = ("LAYER", "OUTPUT", "WEIGHTS", "BIASES", "PARAMS", "FLOPs (lecture)",
              "FLOPs on input", "XLA flops", "XLA check")
    left = (0, 1, len(header) - 1)
    lines = [("INPUT", ca.format_shape(input_shape), *[""] * (len(header) - 2))]
    for row in rows:
        lines.append((
            row.name, ca.format_shape(row.output_shape), _count(row.weights),
            _count(row.biases), f"{row.params:,}", _count(row.flops),
            _count(row.flops_on_input),
            "" if row.xla_flops is None else f"{row.xla_flops:,.0f}",
            _check_text(row)))
    total_xla = [r.xla_flops for r in rows if r.xla_flops is not None]
    lines.append(("TOTAL", "", *(f"{sum(getattr(r, k) for r in rows):,}" for k in (
                      "weights", "biases", "params", "flops", "flops_on_input")),
                  f"{sum(total_xla):,.0f}" if total_xla else "", ""))
    widths = [max(len(line[i]) for line in lines + [header]) for i in range(len(header))]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i in left else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    rule = "-" * len(fmt(header))
    out = [title] if title else []
    out += [fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])]
    out.append("WEIGHTS as the lecture counts them (F*F*D1*K for a conv, in*out for FC); "
               "PARAMS = WEIGHTS + BIASES (one per output channel).")
    out.append("FLOPs (lecture) = multiply-adds H2*W2*F*F*D1*D2 (conv), in*out (FC); "
               "bias adds not counted. XLA counts 2 per multiply-add and skips taps "
               "on zero padding.")
    return "\n".join(out)


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def _check_text(row: Row) -> str:
    if row.xla_flops is None:
        return ""
    if not row.xla_agrees:
        return f"MISMATCH: expected {2 * row.flops_on_input:,}"
    if row.flops_on_input == row.flops:
        return "ok: = 2 x lecture"
    skipped = row.flops - row.flops_on_input
    return f"ok: = 2 x (lecture - {skipped:,} padding taps)"
