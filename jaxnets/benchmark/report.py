"""The benchmark's results as Markdown tables (and JSON), with the targets of issue 7."""

from __future__ import annotations

import dataclasses
import json
import os

from jaxnets.benchmark import lecture

TARGETS = {  # workload -> minimum JAX/PyTorch training examples/s
    "lenet": 1.5, "alexnet": 1.0, "rnn": 1.5}
KERAS_TARGETS = {"rnn": 1.5}  # workload -> minimum JAX/Keras-on-JAX training (issue 18)
ALEXNET_PEAK_FRACTION = {"cpu": 0.70, "gpu": 0.40}   # of f32 (cpu) / bf16 (gpu) GEMM peak
STALL_LIMIT = 0.03
FIRST_STEP_LIMIT = 5.0


def _table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _num(x, digits=0) -> str:
    return "-" if x is None or x != x else f"{x:,.{digits}f}"


def gemm_peak(results, backend: str, dtype: str) -> float | None:
    """JAX's measured GEMM GFLOP/s on `backend` in `dtype`, if the gemm section ran."""
    for g in results.get("gemm", []):
        if (g.framework, g.backend, g.dtype) == ("jax", backend, dtype):
            return g.gflops
    return None


def model_numbers(row, results) -> dict:
    """Derived numbers of one model row: rates, ratios, achieved FLOP/s and peak fraction."""
    stats, batch, backend = row["stats"], row["batch_size"], results["machine"]["backend"]
    out = {}
    for mode, flops_key in (("train", "train"), ("infer", "forward")):
        jax_rate = stats[f"jax_{mode}"].rate(batch)
        torch_stat = stats.get(f"torch_{mode}")
        torch_rate = torch_stat.rate(batch) if torch_stat else None
        achieved = jax_rate * row["flops"][flops_key] / 1e9
        peak = gemm_peak(results, backend, row["dtype"])
        out[mode] = {"jax": jax_rate, "torch": torch_rate,
                     "ratio": jax_rate / torch_rate if torch_rate else None,
                     "gflops": achieved, "peak_fraction": achieved / peak if peak else None,
                     "spread": (batch / stats[f"jax_{mode}"].high,
                                batch / stats[f"jax_{mode}"].low)}
    keras_stat = stats.get("keras_train")
    out["train"]["keras"] = keras_stat.rate(batch) if keras_stat else None
    out["train"]["keras_ratio"] = (out["train"]["jax"] / out["train"]["keras"]
                                   if keras_stat else None)
    return out


def targets(results) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for the issue's targets that this run measured."""
    out, backend = [], results["machine"]["backend"]
    for row in results.get("models", []):
        numbers = model_numbers(row, results)["train"]
        need = TARGETS.get(row["name"])
        if need and numbers["ratio"] is not None:
            out.append((f"{row['name']} training >= {need}x PyTorch",
                        f"{numbers['ratio']:.2f}x ({_num(numbers['jax'])} vs "
                        f"{_num(numbers['torch'])} ex/s)", _verdict(numbers["ratio"] >= need)))
        need = KERAS_TARGETS.get(row["name"])
        if need and numbers["keras_ratio"] is not None:
            out.append((f"{row['name']} training >= {need}x Keras 3 on JAX",
                        f"{numbers['keras_ratio']:.2f}x ({_num(numbers['jax'])} vs "
                        f"{_num(numbers['keras'])} ex/s)",
                        _verdict(numbers["keras_ratio"] >= need)))
        if row["name"] == "alexnet" and (backend != "gpu" or row["dtype"] == "bfloat16"):
            dtype = row["dtype"]  # the GPU target is for bf16 training
            peak = gemm_peak(results, backend, dtype)
            need = ALEXNET_PEAK_FRACTION.get(backend, 0.7)
            if peak:
                fraction = numbers["gflops"] / peak
                out.append((f"alexnet training >= {need:.0%} of {dtype} GEMM peak",
                            f"{fraction:.0%} ({numbers['gflops']:.0f} of {peak:.0f} GFLOP/s)",
                            _verdict(fraction >= need)))
        if row["name"] not in TARGETS:
            continue
        out.append((f"{row['name']} first training step < {FIRST_STEP_LIMIT:.0f} s from the "
                    "built model",
                    f"{row['first_step_seconds']:.2f} s (compile {row['compile_seconds']:.2f} s)",
                    _verdict(row["first_step_seconds"] < FIRST_STEP_LIMIT)))
    for r in results.get("startup", []):
        for kind in ("cold", "warm"):
            if "total" in r[kind]:
                out.append((f"{r['preset']} first step < {FIRST_STEP_LIMIT:.0f} s after start "
                            f"({kind})", f"{r[kind]['total']:.1f} s",
                            _verdict(r[kind]["total"] < FIRST_STEP_LIMIT)))
    measured = [r for r in results.get("stall", []) if r.stall is not None]
    if measured:
        worst = max(measured, key=lambda r: r.stall)
        out.append((f"input stall < {STALL_LIMIT:.0%} for every preset",
                    f"worst {worst.stall:.1%} ({worst.preset}); {len(measured)} of "
                    f"{len(results['stall'])} presets measured",
                    _verdict(worst.stall < STALL_LIMIT)))
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(results, command: str = "") -> str:
    m = results["machine"]
    lines = ["# jaxnets benchmark", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Machine: {m['cpu']}, {m['cpu_cores']} cores; devices {', '.join(m['devices'])}; "
              f"{', '.join(f'{k} {v}' for k, v in m['versions'].items())}.",
              f"Measured {m['date']}; load average {m['load_average_start']} at the start, "
              f"{m.get('load_average_end', '?')} at the end (the machine is shared: medians of "
              f"{results['reps']} interleaved repetitions, spread in brackets). "
              f"Threads: {results['threads']} for XLA and PyTorch; {results['host']}.", ""]
    overrides = results.get("options", {}).get("batch_sizes") or {}
    if overrides:
        lines += ["Batch sizes set by --batch_sizes (not the issue's CPU sizes): " + ", ".join(
            f"{name} {size:,}" for name, size in sorted(overrides.items())) + ".", ""]
    if m["backend"] == "gpu":
        lines += ["float32 on an NVIDIA GPU runs at XLA's default precision: matmuls and "
                  "convolutions as TF32 on the tensor cores (set "
                  "`jax_default_matmul_precision=highest` for IEEE float32).", ""]
    if results.get("gemm"):
        lines += ["## GEMM (n x n x n, best n)", ""]
        lines += _table(["framework", "backend", "dtype", "n", "GFLOP/s", "spread"], [
            (g.framework, g.backend, g.dtype, g.size, _num(g.gflops),
             f"{2 * g.size ** 3 / g.stat.high / 1e9:.0f}..{2 * g.size ** 3 / g.stat.low / 1e9:.0f}")
            for g in results["gemm"]]) + [""]
    if results.get("models"):
        lines += _model_tables(results)
    if results.get("lecture"):
        lines += lecture.markdown_lines(results["lecture"])
    if results.get("host_ab"):
        lines += ["## Host tuning (jaxnets.runtime_options.tune_host), on vs off", "",
                  "Each arm in fresh processes, alternating: off is a process as it starts "
                  "(glibc's adaptive malloc thresholds, XLA:CPU's async dispatch), on is "
                  "what the CLI and `fit` set. Steps as the loop calls them.", ""]
        lines += _table(["model", "off ex/s", "on ex/s", "speed-up"], [
            (r["what"], _num(r["off"].rate(r["batch_size"])), _num(r["on"].rate(r["batch_size"])),
             f"{r['off'].median / r['on'].median:.2f}x") for r in results["host_ab"]])
        lines += [""]
    if results.get("lesson"):
        lines += _lesson_lines(results["lesson"])
    if results.get("stall"):
        lines += ["## Input stall of every preset (real pipeline, the loop's way of calling)",
                  ""]
        pct = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
        lines += _table(["preset", "dataset", "batch", "steps per call", "steps",
                         "examples/s", "stall (steady, as the loop feeds)", "first epoch",
                         "steady, host batches", "note"], [
            (r.preset, r.dataset, r.batch_size, r.steps_per_call, r.steps,
             _num(r.examples_per_sec), pct(r.stall), pct(r.first_epoch), pct(r.host_only),
             r.note)
            for r in results["stall"]])
        lines += ["", "As the loop feeds: the loop's `Strategy.prefetch` (a host thread places "
                  "batches ahead, stacked `steps_per_call` at a time when the preset sets it; "
                  "one CPU device takes numpy as is) into the loop's step program. First "
                  "epoch: the same while the RAM cache fills. Host batches: numpy straight "
                  "into the step program from the training thread (which also stacks them "
                  "when steps per call > 1).", ""]
    if results.get("startup"):
        lines += ["## Start to first training step (fresh `python`, real data and model)", ""]
        rows = []
        for r in results["startup"]:
            cold, warm = r["cold"], r["warm"]
            if "error" in cold:
                rows.append((r["preset"], "-", "-", "-", "-", "-", cold["error"]))
                continue
            rows.append((r["preset"], f"{cold['total']:.1f}", f"{cold['imports']:.1f}",
                         f"{cold['data'] - cold['imports']:.1f}",
                         f"{cold['first_step'] - cold['data']:.1f}",
                         f"{warm['total']:.1f}" if "total" in warm else "-", ""))
        lines += _table(["preset", "cold s", "imports s", "data s (TF, RAM cache)",
                         "init + compile + step s", "with warm compilation cache s", "note"],
                        rows)
        lines += ["", "Cold: no compiled program cached; the interpreter's own start is in the "
                  "total. The data is as any earlier run left it: TFDS datasets prepared, and "
                  "the TFDS splits behind rnn_sentiment, rnn_charlm and rnn_captions kept as "
                  "numpy beside them (jaxnets/data/split_cache.py: rnn_charlm and "
                  "rnn_captions then start without TensorFlow, whose import their first run "
                  "ever pays, ~2 s more). Warm: the same command again with JAX's persistent "
                  "compilation cache (jaxnets.runtime_options.enable_compilation_cache).", ""]
    if results.get("failures"):
        failed = [(f["section"], f["name"], f["error"].replace("|", "/"))
                  for f in results["failures"]]
        lines += ["## Failed (the other rows were measured)", ""]
        lines += _table(["section", "model", "error"], failed) + [""]
    checks = targets(results)
    if checks:
        lines += ["## Targets (issue 7)", ""] + _table(["target", "measured", ""], checks) + [""]
    return "\n".join(lines)


def _lesson_lines(lesson) -> list[str]:
    """The lesson's table (disk -> RAM -> prefetch -> device prefetch) and what the disk
    alone gave."""
    lines = ["## Input pipeline lesson (LeNet-5, lenet_mnist's batch and augmentation)", ""]
    lines += _table(["feeding", "examples/s", "MB/s read", "input stall"], [
        (r.method, f"{_num(r.examples_per_sec)} ({_num(r.low)}-{_num(r.high)})",
         _num(r.megabytes_per_sec, 1), f"{r.stall:.1%}")
        for r in lesson.rows])
    probe = lesson.storage
    if probe.resident_after_drop is None:
        dropped = "whether the drop took effect is unknown (no mincore here)"
    else:
        cached, pages = probe.resident_after_drop
        dropped = (f"{cached} of {pages} pages cached right after a drop (mincore): the drop "
                   + ("took effect" if probe.drop_took_effect else "did **not** take effect"))
    lines += ["", f"MB/s read: examples/s x the bytes an example takes where the arm reads "
              f"it (a TFRecord, an .npz file, the RAM arrays). The disk arm read "
              f"{lesson.disk_epochs} epoch(s), the file dropped from the page cache before "
              f"each. The same TFRecord file ({probe.file_bytes / 1e6:.1f} MB) read whole "
              f"and alone: {_num(probe.cold_mb_per_sec)} MB/s cold (after a drop), "
              f"{_num(probe.warm_mb_per_sec)} MB/s from the page cache; {dropped}. "
              f"Disk: {probe.disk}.", ""]
    return lines


def _model_tables(results) -> list[str]:
    lines = []
    for mode, title, flops_key in (("train", "Training", "train"),
                                   ("infer", "Inference", "forward")):
        rows = []
        for row in results["models"]:
            n = model_numbers(row, results)[mode]
            low, high = n["spread"]
            rows.append((row["what"], row["dtype"], f"{_num(n['jax'])} ({low:,.0f}..{high:,.0f})",
                         _num(n["torch"]), "-" if n["ratio"] is None else f"{n['ratio']:.2f}x",
                         f"{row['flops'][flops_key] / 1e6:,.1f}", _num(n["gflops"]),
                         "-" if n["peak_fraction"] is None else f"{n['peak_fraction']:.0%}")
                        + ((_steps_per_call(row), f"{row['compile_seconds']:.2f}",
                            f"{row['first_step_seconds']:.2f}", _num(n["keras"]),
                            "-" if n["keras_ratio"] is None else f"{n['keras_ratio']:.2f}x")
                           if mode == "train" else ()))
        header = ["model", "dtype", "jaxnets ex/s", "PyTorch ex/s", "ratio",
                  "MFLOP/example", "GFLOP/s", "of GEMM peak"]
        if mode == "train":
            header += ["steps per call", "compile s", "first step s", "Keras-JAX ex/s",
                       "vs Keras"]
        lines += [f"## {title}", ""] + _table(header, rows) + [""]
    lines += ["MFLOP/example: the model's useful FLOPs (2 per multiply-add of the lecture's "
              "count; training = 3 x forward), see jaxnets/benchmark/flops.py. GEMM peak: "
              "JAX's measured GEMM in the same dtype on this backend. Steps per call: as the "
              "preset trains (`steps_per_call`: k steps in one compiled call, on k stacked "
              "batches); with k > 1 the rate at one step per call follows in brackets. "
              "First step: from the built model to the first finished training call (state, "
              "compile, call). Keras-JAX: the RNN in Keras 3 on the JAX backend, `model.fit` "
              "(jaxnets/benchmark/keras_side.py), interleaved with the other arms.", ""]
    notes = [f"{row['name']}: {row['keras_note']}" for row in results["models"]
             if row["name"] in KERAS_TARGETS and row.get("keras_note")]
    if notes:
        lines += ["No Keras arm: " + "; ".join(notes) + ".", ""]
    return lines


def _steps_per_call(row) -> str:
    k = row.get("steps_per_call", 1)
    single = row["stats"].get("jax_train_single")
    return f"{k} (one: {_num(single.rate(row['batch_size']))} ex/s)" if single else str(k)


def to_json(results) -> str:
    def default(o):
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        return str(o)

    data = dict(results)
    data["models"] = [{**row, "derived": model_numbers(row, results)}
                      for row in results.get("models", [])]
    data["targets"] = targets(results)
    return json.dumps(data, indent=1, default=default)


def write(results, directory: str, name: str, command: str = "") -> list[str]:
    """Writes <directory>/<name>.md and .json; returns the paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for ext, text in (("md", markdown(results, command)), ("json", to_json(results))):
        path = os.path.join(directory, f"{name}.{ext}")
        with open(path, "w") as f:
            f.write(text + "\n")
        paths.append(path)
    return paths
