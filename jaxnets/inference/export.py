"""A trained model for programs without jaxnets: the task's program (programs.py) as
serialized StableHLO (`jax.export`), its parameters and its vocabulary.

    <out>/
      program.jax     jax.export.Exported.serialize() of program(params, *inputs)
      params.npz      the parameters, one array per '/'-joined path (numpy's format)
      manifest.json   task, inputs and outputs with their shapes, tokenizer rule and
                      vocabularies, class names, batch size, versions
      serve.py        the loader: jax and numpy only (`python serve.py <out> < texts.txt`)

The program is the one `Run`'s batch path runs, so it pads, masks and normalises as
evaluation does; its batch dimension 'b' (and a text's length 't') is symbolic when the
model allows it (jax.export shape polymorphism). A model whose code branches on the batch
size (the CNNs split large convolutions into batch slices: jaxnets/models/kernels.py) is
exported for a fixed batch, `manifest["batch_size"]`, and the loader pads to it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from jax import export

from jaxnets.data import sequence_tasks, tokenizer

TASKS = ("classify_text", "classify_images", "translate", "caption", "sample")  # exported

FORMAT = 1  # bump when the files' layout changes
FILES = ("program.jax", "params.npz", "manifest.json", "serve.py")
SERVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve.py")


def flatten(params) -> dict[str, np.ndarray]:
    """{'W_hy/kernel': array, ...}: the parameter tree by '/'-joined paths."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(str(k.key) for k in path): np.asarray(v) for path, v in leaves}


def unflatten(flat: dict) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        *parents, name = path.split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return tree


def input_specs(run, batch) -> tuple:
    """The program's inputs as ShapeDtypeStructs; `batch` an int or a symbolic dimension."""
    shape, task = tuple(run.sizes["input_shape"]), run.task
    if task in ("classify_text", "translate"):
        (width,) = export.symbolic_shape("t", scope=_scope(batch))
        return (jax.ShapeDtypeStruct((batch, width), jnp.int32),
                jax.ShapeDtypeStruct((batch,), jnp.int32))
    if task == "classify_images":
        return (jax.ShapeDtypeStruct((batch, *shape), jnp.uint8),)
    if task == "caption":
        return (jax.ShapeDtypeStruct((batch, *shape), jnp.float32),)
    return (jax.ShapeDtypeStruct((batch,), jnp.int32),)  # sample: one seed per text


def _scope(batch):
    return batch.scope if export.is_symbolic_dim(batch) else None


def export_program(run, temperature: float = 0.8, platforms=("cpu",),
                   batch_size: int | None = None) -> tuple[export.Exported, int]:
    """(the Exported program of `run`'s task, its fixed batch size or 0 if symbolic).

    `batch_size` None: symbolic when the model allows it, else run.batch_size()."""
    function = run.function(temperature)
    program = jax.jit(lambda flat, *arrays: function(unflatten(flat), *arrays))
    params = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in flatten(run.params).items()}

    def lowered(batch):
        return export.export(program, platforms=tuple(platforms))(params,
                                                                  *input_specs(run, batch))
    if batch_size is None:
        try:
            return lowered(export.symbolic_shape("b")[0]), 0
        except jax.errors.InconclusiveDimensionOperation:  # code branches on b
            batch_size = run.batch_size()
    return lowered(batch_size), batch_size


def manifest(run, exported: export.Exported, batch_size: int, temperature: float) -> dict:
    """What a loader needs besides the program and the parameters."""
    task = run.task
    description = {
        "format": FORMAT, "task": task, "workdir": os.path.abspath(run.workdir),
        "preset": run.config["preset"], "model": run.config["model"],
        "batch_size": batch_size, "platforms": list(exported.platforms),
        "jax_version": jax.__version__,
        "inputs": [{"shape": [str(d) for d in a.shape], "dtype": str(a.dtype)}
                   for a in exported.in_avals[len(flatten(run.params)):]],
        "outputs": [{"shape": [str(d) for d in a.shape], "dtype": str(a.dtype)}
                    for a in exported.out_avals],
    }
    if task in ("classify_text", "classify_images"):
        description["classes"] = run.class_names()
    if task == "classify_text":
        description["text"] = _text_rule(run.vocab, run.max_length)
    if task == "translate":
        description["text"] = _text_rule(run.source_vocab, run.max_length)
    if task in ("translate", "caption", "sample"):
        description["output"] = {"vocab": _symbols(run.vocab), "eos": sequence_tasks.EOS,
                                 "sep": "" if run.vocab.unit == "chars" else " "}
    if task == "classify_images":
        description["image"] = {"size": list(run.sizes["input_shape"]), "dtype": "uint8",
                                "normalised_inside": "(x / 255 - mean) / std",
                                "fit": "jaxnets.inference.inputs.fit_image (pad or resize "
                                       "and centre-crop to size)"}
    if task == "caption":
        description["image"] = {"size": list(run.sizes["input_shape"]), "dtype": "float32",
                                "range": [0, 1]}
    if task == "sample":
        description["sample"] = {"temperature": temperature, "length": run.max_length,
                                 "seed": "text i draws from jax.random.key(seeds[i])"}
    return description


def _text_rule(vocab, max_length: int) -> dict:
    """How text becomes ids: the tokenizer's patterns (or characters), the vocabulary."""
    symbols = isinstance(vocab, sequence_tasks.Symbols)
    tokens = _symbols(vocab) if symbols else list(vocab.tokens)
    unknown = (tokens.index(sequence_tasks.UNK) if sequence_tasks.UNK in tokens else None) \
        if symbols else tokenizer.OOV
    return {"unit": vocab.unit if symbols else "words", "lowercase": True,
            "break": "(?i)" + tokenizer._HTML_BREAK.pattern,  # pylint: disable=protected-access
            "token": tokenizer._TOKEN.pattern,  # pylint: disable=protected-access
            "vocab": tokens, "unknown": unknown, "max_length": max_length,
            "numbers": vocab == sequence_tasks.NUMBER_SOURCE}


def _symbols(symbols) -> list[str]:
    """Ids -> symbols of a Symbols: PAD, BOS, EOS, then its own."""
    return ["<pad>", "<bos>", "<eos>", *symbols.symbols]


def write(run, out: str, *, temperature: float = 0.8, platforms=("cpu",),
          batch_size: int | None = None) -> dict:
    """Exports `run` into the directory `out`; returns the manifest.

    `out` must be missing, empty, or an earlier export (which is replaced whole: the new
    files are written beside it and swapped in at the end, so a failure leaves it as it
    was)."""
    out = os.path.abspath(out)
    if run.task not in TASKS:
        raise ValueError(f"{run.workdir} holds a {run.config['model']} run "
                         f"({run.config['preset']}): export serves {', '.join(TASKS)}; "
                         "classify its clips with python -m jaxnets.experiments.predict "
                         "--clip")
    check_out(out)
    exported, fixed = export_program(run, temperature, platforms, batch_size)
    description = manifest(run, exported, fixed, temperature)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=parent)
    try:
        with open(os.path.join(staging, "program.jax"), "wb") as f:
            f.write(exported.serialize())
        np.savez(os.path.join(staging, "params.npz"), **flatten(run.params))
        with open(os.path.join(staging, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(description, f, indent=1, ensure_ascii=False)
        shutil.copyfile(SERVE, os.path.join(staging, "serve.py"))
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return description


def check_out(out: str) -> None:
    """A ValueError unless `out` can take an export (see `write`)."""
    out = os.path.abspath(out)
    if os.path.isfile(out):
        raise ValueError(f"--out={out} is a file: give a directory for the export")
    if os.path.isdir(out) and os.listdir(out) and \
            not os.path.exists(os.path.join(out, "manifest.json")):
        raise ValueError(f"--out={out} holds other files: give a new or empty directory "
                         "(an earlier export there is replaced)")
    parent = os.path.dirname(out)
    probe = parent
    while not os.path.isdir(probe):  # the nearest existing directory must be writable
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK):
        raise ValueError(f"--out={out}: cannot write in {probe}: give a writable directory")


def _swap_in(staging: str, out: str) -> None:
    """Moves the staged export to `out`, replacing an earlier export or an empty folder."""
    if not os.path.exists(out):
        os.rename(staging, out)
        return
    old = staging + ".old"
    os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)
