r"""Inference speed of finished runs: the batch path against one call per input and PyTorch.

  python -m jaxnets.benchmark.inference_bench --sentiment=runs/rnn_sentiment \
      --lenet=runs/lenet_mnist --alexnet=runs/alexnet_mnist

Sections (an empty workdir flag skips its own):
  rnn      RT sentences/s of the rnn_sentiment run: the per-call path before issue 18
           (module.apply without jit, one sentence a call; a small sample), the per-call
           path now (`run.classify`, one jitted call a sentence), the batch path end to
           end from a file (read + check + tokenize + classify + JSON lines, as predict
           does; start-up excluded), and PyTorch eager on the same trained weights (ported
           into torch.nn.RNN/LSTM/GRU), batched the same way and one sentence a call, with
           how far its probabilities are from JAX's.
  images   images/s of LeNet and AlexNet runs through `classify_image_files` (PNG decode,
           fit to the input as in training, classify), and of the model alone.
  startup  `python -m jaxnets.experiments.predict` to its first answer with the
           compilation cache warm (a first run fills it), and whole commands over a file
           and a directory, each in a fresh process.

Every figure is the best of --repeats timed passes after one warm-up pass (the median is
printed too). The sentences are all 10,662 of rt_sentences (train + test), --copies times.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

from jaxnets import cli

_SENTIMENT = flags.DEFINE_string("sentiment", "runs/rnn_sentiment", "An rnn_sentiment workdir.")
_LENET = flags.DEFINE_string("lenet", "runs/lenet_mnist", "A lenet_mnist workdir.")
_ALEXNET = flags.DEFINE_string("alexnet", "", "An alexnet workdir (e.g. a smoke run).")
_SECTIONS = flags.DEFINE_list("sections", ["rnn", "images", "startup"], "What to measure.")
_COPIES = flags.DEFINE_integer("copies", 2, "The RT sentences this many times.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes per figure.", lower_bound=1)
_PER_CALL = flags.DEFINE_integer("per_call", 1000, "Sentences for the per-call paths.",
                                 lower_bound=1)
_OLD_PER_CALL = flags.DEFINE_integer("old_per_call", 20, "Sentences for the path before "
                                     "issue 18 (3-5 a second).", lower_bound=1)
_IMAGES = flags.DEFINE_integer("images", 1000, "Digits for LeNet (AlexNet: a fifth).",
                               lower_bound=1)
_JSON = flags.DEFINE_string("json", "", "Also write the figures here as JSON.")

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def timed(fn, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of fn(), after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def rate(count: int, times: list[float]) -> dict:
    return {"per_s": count / min(times), "median_per_s": count / statistics.median(times),
            "count": count}


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in
                  subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), "?")
    return {"cpu": model, "cores": os.cpu_count(), "load": os.getloadavg()}


# -- rnn ----------------------------------------------------------------------------------

def rt_texts(copies: int) -> list[str]:
    from jaxnets.data import split_cache  # pylint: disable=g-import-not-at-top
    texts = [t.decode("utf-8") for split in ("train", "test")
             for t in split_cache.whole_split("rt_sentences", split, None)["text"]]
    return texts * copies


def rnn_section(workdir: str, folder: str, figures: dict) -> str:
    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jaxnets.inference import inputs, load_run  # pylint: disable=g-import-not-at-top
    run = load_run(workdir)
    texts = rt_texts(_COPIES.value)
    path = os.path.join(folder, "rt.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    out = os.path.join(folder, "answers.jsonl")

    def from_file():  # what predict --input_file --output does after start-up
        lines = inputs.read_lines(path)
        predictions = run.classify_batch(lines.texts)
        with open(out, "w", encoding="utf-8") as f:
            for text, number, p in zip(lines.texts, lines.numbers, predictions):
                f.write(json.dumps({"input": text, "line": number, "answer": p.answer,
                                    "probability": p.probability}) + "\n")
        return predictions

    batch = rate(len(texts), timed(from_file, _REPEATS.value))
    model_only_ids = [run.vocab.encode(t) for t in texts]
    model_only = rate(len(texts), timed(lambda: run.classify_ids(model_only_ids),
                                        _REPEATS.value))
    probs_jax = np.array([[p.probability if p.answer == "positive" else 1 - p.probability]
                          for p in run.classify_batch(texts)])[:, 0]
    sample = texts[:_PER_CALL.value]
    per_call = rate(len(sample), timed(lambda: [run.classify(t) for t in sample], 1))

    def before(text):  # jaxnets.inference before issue 18: no jit, one sentence a call
        ids = run.vocab.encode(text)[:run.max_length] or [0]
        logits = run.module.apply({"params": run.params}, np.array([ids], np.int32),
                                  np.array([len(ids)]))
        return float(np.asarray(jax.nn.softmax(logits[0])).max())
    old = texts[:_OLD_PER_CALL.value]
    start = time.perf_counter()
    for text in old:  # the first time: each new length traces and runs op by op
        before(text)
    old_cold = rate(len(old), [time.perf_counter() - start])
    old_per_call = rate(len(old), timed(lambda: [before(t) for t in old], 1))
    figures["rnn"] = {"sentences": len(texts), "batch_from_file": batch,
                      "model_only": model_only, "per_call_now": per_call,
                      "per_call_before": old_per_call, "per_call_before_cold": old_cold,
                      "batch_size": run.batch_size()}
    lines = [f"RT sentences/s, rnn_sentiment ({run.config['model_kwargs']['cell']} cell, "
             f"hidden {run.config['model_kwargs']['hidden_size']}, max_length "
             f"{run.max_length}), best (median) of {_REPEATS.value}:",
             f"  batch path from a file ({len(texts):,} lines, batch {run.batch_size()}): "
             f"{batch['per_s']:,.0f} ({batch['median_per_s']:,.0f})",
             f"  batch path, model only (tokenized already): {model_only['per_s']:,.0f} "
             f"({model_only['median_per_s']:,.0f})",
             f"  per call, jitted (run.classify, {len(sample):,}): {per_call['per_s']:,.0f}",
             f"  per call before issue 18 (no jit, {len(old)}): {old_per_call['per_s']:,.1f} "
             f"(the first pass, new lengths: {old_cold['per_s']:,.1f})"]
    from jaxnets.benchmark import torch_side  # pylint: disable=g-import-not-at-top
    if torch_side.available():
        lines += torch_rows(run, model_only_ids, probs_jax, sample, figures)
    else:
        lines.append("  PyTorch: not installed (pip install torch==2.13.0)")
    return "\n".join(lines)


def torch_classifier(torch, run):
    """The run's RNNClassifier in torch.nn, with the trained weights."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    nn, p = torch.nn, run.params
    cell = run.config["model_kwargs"].get("cell", "vanilla")
    kind = {"vanilla": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    embed = np.asarray(p["embed"]["embedding"])
    hidden = np.asarray(p["rnn"]["cell"]["W_hh"]).shape[0]
    model = nn.ModuleDict({"embed": nn.Embedding(*embed.shape),
                           "rnn": kind(embed.shape[1], hidden, batch_first=True),
                           "out": nn.Linear(hidden, int(run.sizes["num_classes"]))})
    bias_hh = np.zeros_like(np.asarray(p["rnn"]["cell"]["W_xh"]["bias"]))
    if cell == "gru":  # jaxnets' GRU adds b_hn inside r * (W_hn h + b_hn), as torch's b_hn
        bias_hh[2 * hidden:] = np.asarray(p["rnn"]["cell"]["b_hn"])
    weights = {"embed.weight": embed,
               "rnn.weight_ih_l0": np.asarray(p["rnn"]["cell"]["W_xh"]["kernel"]).T,
               "rnn.bias_ih_l0": np.asarray(p["rnn"]["cell"]["W_xh"]["bias"]),
               "rnn.weight_hh_l0": np.asarray(p["rnn"]["cell"]["W_hh"]).T,
               "rnn.bias_hh_l0": bias_hh,
               "out.weight": np.asarray(p["W_hy"]["kernel"]).T,
               "out.bias": np.asarray(p["W_hy"]["bias"])}
    model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32))
                           for k, v in weights.items()})
    model.eval()

    def probabilities(tokens, lengths):
        x = model["embed"](tokens)
        if lengths is not None:
            x = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                  enforce_sorted=False)
        _, h = model["rnn"](x)
        h = h[0] if isinstance(h, tuple) else h  # LSTM: (h, c)
        return torch.softmax(model["out"](h[-1]), -1)
    return probabilities


def torch_rows(run, encoded, probs_jax, sample, figures) -> list[str]:
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jaxnets.benchmark import torch_side  # pylint: disable=g-import-not-at-top
    torch = torch_side.setup(os.cpu_count() or 1)
    classify = torch_classifier(torch, run)
    cut = [ids[:run.max_length] for ids in encoded]
    order = np.argsort([len(ids) for ids in cut], kind="stable")
    size = run.batch_size()

    def batched():  # the same sorted chunks as the JAX batch path, each padded to its longest
        out = np.zeros(len(cut), np.float32)
        with torch.inference_mode():
            for start in range(0, len(cut), size):
                rows = order[start:start + size]
                lengths = [len(cut[i]) for i in rows]
                tokens = np.zeros((len(rows), max(lengths)), np.int64)
                for r, i in enumerate(rows):
                    tokens[r, :lengths[r]] = cut[i]
                out[rows] = classify(torch.from_numpy(tokens), torch.tensor(lengths))[:, 1]
        return out

    def one_at_a_time():
        with torch.inference_mode():
            for text in sample:
                ids = run.vocab.encode(text)[:run.max_length]
                classify(torch.tensor([ids]), None)
    batch = rate(len(cut), timed(batched, _REPEATS.value))
    per_call = rate(len(sample), timed(one_at_a_time, 1))
    positive = batched()
    gap = float(np.abs(positive - probs_jax).max())
    agree = float(np.mean((positive > 0.5) == (probs_jax > 0.5)))
    figures["rnn"]["torch"] = {"batch": batch, "per_call": per_call, "max_abs_diff": gap,
                               "label_agreement": agree, "version": torch.__version__}
    return [f"  PyTorch {torch.__version__} eager, same weights, batched the same way "
            f"(tokenized already): {batch['per_s']:,.0f} ({batch['median_per_s']:,.0f})",
            f"  PyTorch eager, one sentence a call: {per_call['per_s']:,.0f}",
            f"  PyTorch vs JAX: labels agree on {agree:.2%}, largest probability gap "
            f"{gap:.1e}"]


# -- images -------------------------------------------------------------------------------

def write_digits(folder: str, count: int) -> str:
    """`count` real MNIST test digits (mnist5k, 28x28) as PNGs in `folder`/digits."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top
    from jaxnets.data import split_cache  # pylint: disable=g-import-not-at-top
    digits = split_cache.whole_split("mnist5k", "test", None)["image"]
    target = os.path.join(folder, f"digits{count}")
    os.makedirs(target, exist_ok=True)
    for i in range(count):
        Image.fromarray(digits[i % len(digits)][..., 0]).save(
            os.path.join(target, f"{i:05d}.png"))
    return target


def image_section(name: str, workdir: str, count: int, folder: str, figures: dict) -> str:
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jaxnets.inference import inputs, load_run  # pylint: disable=g-import-not-at-top
    run = load_run(workdir)
    paths = inputs.image_paths([write_digits(folder, count)])
    files = rate(count, timed(lambda: list(run.classify_image_files(paths)), _REPEATS.value))
    shape = tuple(run.sizes["input_shape"])
    fitted = np.stack([inputs.load_image(p, lambda img: inputs.fit_image(img, shape))
                       for p in paths])
    model = rate(count, timed(lambda: run.classify_images(fitted), _REPEATS.value))
    figures[name] = {"files": files, "model_only": model, "batch_size": run.batch_size(),
                     "input_shape": shape}
    return (f"{name} images/s ({count:,} 28x28 PNG digits -> {'x'.join(map(str, shape))}, "
            f"batch {run.batch_size()}): files {files['per_s']:,.0f} "
            f"({files['median_per_s']:,.0f}); the model alone on fitted arrays "
            f"{model['per_s']:,.0f} ({model['median_per_s']:,.0f})")


# -- start-up -----------------------------------------------------------------------------

def first_answer(args: list[str]) -> tuple[float, float]:
    """(seconds to the first line on stdout, seconds to exit) of a fresh predict process."""
    start = time.perf_counter()
    with subprocess.Popen([sys.executable, "-m", "jaxnets.experiments.predict", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=ENV) as process:
        line = process.stdout.readline()
        first = time.perf_counter() - start
        rest, errors = process.communicate()
    if process.returncode != 0 or not (line or "wrote" in errors):
        raise RuntimeError(f"predict {' '.join(args)} failed: {errors[-2000:]}")
    return first, time.perf_counter() - start


def startup_section(folder: str, figures: dict) -> str:
    rows, found = [], {}
    questions = []
    if _SENTIMENT.value:
        questions += [("rnn_sentiment --text", [f"--workdir={_SENTIMENT.value}",
                                                "--text=a gorgeous, witty film"]),
                      ("rnn_sentiment --input_file (whole file)",
                       [f"--workdir={_SENTIMENT.value}",
                        f"--input_file={os.path.join(folder, 'rt.txt')}",
                        f"--output={os.path.join(folder, 'cli.jsonl')}"])]
    for name, workdir in (("lenet", _LENET.value), ("alexnet", _ALEXNET.value)):
        if workdir:
            digits = write_digits(folder, 1)
            questions.append((f"{name} --image (one)", [f"--workdir={workdir}",
                                                        f"--image={digits}/00000.png"]))
            many = _IMAGES.value // (5 if name == "alexnet" else 1)
            questions.append((f"{name} --image (directory of {many:,})",
                              [f"--workdir={workdir}", f"--image={write_digits(folder, many)}",
                               f"--output={os.path.join(folder, name + '.jsonl')}"]))
    for label, args in questions:
        first_answer(args)  # fills the compilation cache
        times = [first_answer(args) for _ in range(_REPEATS.value)]
        found[label] = {"first_answer_s": min(t[0] for t in times),
                        "exit_s": min(t[1] for t in times),
                        "median_first_answer_s": statistics.median(t[0] for t in times)}
        rows.append(f"  {label}: first answer {found[label]['first_answer_s']:.2f} s "
                    f"(median {found[label]['median_first_answer_s']:.2f}), process "
                    f"{found[label]['exit_s']:.2f} s")
    figures["startup"] = found
    return "\n".join(["predict in a fresh process, compilation cache warm (best of "
                      f"{_REPEATS.value}; a command with --output: the whole command):"]
                     + rows)


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; use --flag=value")
    unknown = set(_SECTIONS.value) - {"rnn", "images", "startup"}
    if unknown:
        raise ValueError(f"--sections: unknown {sorted(unknown)}; give rnn, images, startup")
    for flag, value in (("sentiment", _SENTIMENT.value), ("lenet", _LENET.value),
                        ("alexnet", _ALEXNET.value)):
        if value and not os.path.isfile(os.path.join(value, "model.json")):
            raise ValueError(f"--{flag}={value} is not a finished run's workdir: train one "
                             f"or pass --{flag}= to skip it")
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    runtime_options.enable_compilation_cache()  # as predict does
    figures = {"machine_before": machine()}
    print(f"machine: {figures['machine_before']['cpu']}, {figures['machine_before']['cores']} "
          f"cores, load {' '.join(f'{x:.2f}' for x in figures['machine_before']['load'])}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="jaxnets-inference-bench-") as folder:
        if "rnn" in _SECTIONS.value and _SENTIMENT.value:
            print(rnn_section(_SENTIMENT.value, folder, figures), flush=True)
        if "images" in _SECTIONS.value:
            for name, workdir, count in (("lenet", _LENET.value, _IMAGES.value),
                                         ("alexnet", _ALEXNET.value, _IMAGES.value // 5)):
                if workdir:
                    print(image_section(name, workdir, count, folder, figures), flush=True)
        if "startup" in _SECTIONS.value:
            if _SENTIMENT.value and not os.path.exists(os.path.join(folder, "rt.txt")):
                with open(os.path.join(folder, "rt.txt"), "w", encoding="utf-8") as f:
                    f.write("\n".join(rt_texts(_COPIES.value)) + "\n")
            print(startup_section(folder, figures), flush=True)
    figures["machine_after"] = machine()
    print(f"load after: {' '.join(f'{x:.2f}' for x in figures['machine_after']['load'])}")
    if _JSON.value:
        with open(_JSON.value, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    cli.run(main)
