r"""Use a finished run: classify sentences or images, translate numbers, caption, sample text.

  python -m jaxnets.experiments.predict --workdir=runs/rnn_sentiment --text="a gorgeous, witty film"
  python -m jaxnets.experiments.predict --workdir=runs/rnn_sentiment --input_file=reviews.txt --output=answers.jsonl
  python -m jaxnets.experiments.predict --workdir=runs/rnn_translate --number=1234
  python -m jaxnets.experiments.predict --workdir=runs/rnn_translate --input_file=numbers.txt
  python -m jaxnets.experiments.predict --workdir=runs/lenet_mnist --image digits/ --top_k=3
  python -m jaxnets.experiments.predict --workdir=runs/alexnet --image a.jpg b.jpg
  python -m jaxnets.experiments.predict --workdir=runs/rnn_captions --image=strip.png
  python -m jaxnets.experiments.predict --workdir=runs/rnn_captions --eval_example=7 --write_png=strip.png
  python -m jaxnets.experiments.predict --workdir=runs/rnn_charlm --sample=3
  python -m jaxnets.experiments.predict --workdir=runs/rnn_video --clip clip.npy frames/

One question gets one answer (`positive (71.4%)`). A file (--input_file, one text or number
per line, '-' for standard input), several images or clips get one line per input on stdout,
`input<TAB>answer<TAB>probability` (then `<TAB>class<TAB>probability` for each further
class of --top_k), or, with --output=PATH, one JSON object per line in PATH: {"input",
"line" (files), "answer", "probability", "top" (classifiers), "frames" (clips: each
frame's [class, probability]), "truncated" (text, clips)}, written whole or not at all.
A clip's answer is its frames' classes, its probability that of the whole labelling. Every answer is computed by the batch path (jaxnets/inference/).

What the inputs may be (jaxnets/inference/inputs.py): UTF-8 lines, empty ones skipped
with a note; texts longer than the run's max_length are cut to it as in training, with a
note; numbers are 0..9999 in digits, leading zeros dropped ('007' is seven). A bad line or
image is one line naming it, exit 2, before any answer. A progress bar goes to stderr when
it is a terminal and the input is longer than a batch (--progress forces it on or off).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from absl import flags

from jaxnets import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The --workdir of a finished run.", required=True)
_TEXT = flags.DEFINE_string("text", None, "A sentence to classify (rnn_sentiment runs).")
_INPUT_FILE = flags.DEFINE_string(
    "input_file", None, "A UTF-8 file of texts to classify, or of numbers to translate, one "
    "per line ('-': standard input).")
_NUMBER = flags.DEFINE_string("number", None, "0..9999 to write in words (rnn_translate runs); "
                              "with a TFDS translation run, any source sentence.")
_IMAGE = flags.DEFINE_multi_string(
    "image", None, "Image files or directories of them: digits to classify (lenet_mnist, "
    "alexnet runs) or strips of 1-4 white-on-black digits to caption (rnn_captions). More "
    "paths may follow as arguments: --image a.png b.png.")
_CLIP = flags.DEFINE_multi_string(
    "clip", None, "Clips whose every frame to classify (rnn_video runs): .npy files of "
    "frames [T, H, W] or [T, H, W, C], or directories of frame images (sorted by name). "
    "More paths may follow as arguments: --clip a.npy b.npy.")
_EVAL_EXAMPLE = flags.DEFINE_integer("eval_example", None,
                                     "Caption test strip K of the run's dataset.")
_WRITE_PNG = flags.DEFINE_string("write_png", None, "With --eval_example: save the strip here.")
_SAMPLE = flags.DEFINE_integer("sample", None, "Sample this many texts (rnn_charlm runs).",
                               lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature (> 0).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling: text i draws from seed + i.", lower_bound=0)
_TOP_K = flags.DEFINE_integer("top_k", 1, "Classifiers: also show the k most likely classes.",
                              lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "Write the answers to this file as JSON lines "
                              "instead of printing them.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 0, "Inputs per model call (0: 256; 32 for "
                                   "images larger than 64x64x3).", lower_bound=0)
_PROGRESS = flags.DEFINE_boolean("progress", None, "Show a progress bar on stderr (default: "
                                 "when stderr is a terminal and the input is long).")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", "auto", "Directory of JAX's persistent compilation cache (the "
    "second prediction skips compiling); auto = ~/.cache/jaxnets/xla/<this CPU>, off = none.")

QUESTIONS = {  # the run's task -> the flags that ask it
    "classify_text": ("text", "input_file"), "translate": ("number", "input_file"),
    "classify_images": ("image",), "caption": ("image", "eval_example"),
    "sample": ("sample",), "classify_frames": ("clip",)}


def main(argv):
    asked = _asked(argv[1:])
    output = _Output(_OUTPUT.value, inputs=(_INPUT_FILE.value,)) if _OUTPUT.value else None
    from jaxnets import runtime_options  # pylint: disable=g-import-not-at-top
    runtime_options.use_compilation_cache(_COMPILATION_CACHE.value)
    from jaxnets import inference  # pylint: disable=g-import-not-at-top
    run = inference.load_run(_WORKDIR.value, max_batch=_BATCH_SIZE.value)
    task = run.task
    if asked not in QUESTIONS[task]:
        also = {"input_file": " (or --input_file, a file of them)",
                "eval_example": " (or --eval_example)"}.get(QUESTIONS[task][-1], "")
        raise ValueError(f"{_WORKDIR.value} holds a {run.config['model']} run "
                         f"({run.config['preset']}): ask it with --{QUESTIONS[task][0]}, "
                         f"not --{asked}{also}")
    try:
        records = _answer(run, inference, asked, argv[1:])
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if output is None:
        return
    count = output.write(records)
    print(f"wrote {count:,} answer{'s' * (count != 1)} to {_OUTPUT.value}", file=sys.stderr)


def _asked(extra: list[str]) -> str:
    """The one question the flags ask; usage errors before anything loads."""
    given = {"text": _TEXT.value, "input_file": _INPUT_FILE.value, "number": _NUMBER.value,
             "image": _IMAGE.value, "eval_example": _EVAL_EXAMPLE.value,
             "sample": _SAMPLE.value, "clip": _CLIP.value}
    given = [k for k, v in given.items() if v is not None]
    if extra and given not in (["image"], ["clip"]):
        raise ValueError(f"unexpected arguments {extra}; use --flag=value (only --image "
                         "and --clip take more paths as arguments)")
    if len(given) != 1:
        raise ValueError("give exactly one of --text, --input_file, --number, --image, "
                         "--eval_example, --sample, --clip")
    if not _TEMPERATURE.value > 0 or _TEMPERATURE.value == float("inf"):  # NaN fails too
        raise ValueError(f"--temperature={_TEMPERATURE.value}: give a finite number > 0")
    if _TEXT.value is not None and not _TEXT.value.strip():
        raise ValueError("--text is empty: give a sentence to classify")
    if _WRITE_PNG.value is not None and _EVAL_EXAMPLE.value is None:
        raise ValueError("--write_png saves an --eval_example's strip: give --eval_example "
                         "too (an --image is a file already)")
    if _WRITE_PNG.value is not None and not _WRITE_PNG.value.lower().endswith(".png"):
        raise ValueError(f"--write_png={_WRITE_PNG.value}: give a path ending in .png")
    return given[0]


def _answer(run, inference, asked: str, extra: list[str]) -> list[dict]:
    """Answers the question, printing them unless --output; returns the JSON records."""
    from jaxnets.inference import inputs  # pylint: disable=g-import-not-at-top
    table = _OUTPUT.value is None
    if asked == "text":
        prediction = run.classify_batch([_TEXT.value], top_k=_TOP_K.value)[0]
        _say(table and _classes(prediction))
        return [_record(_TEXT.value, prediction)]
    if asked == "number":
        prediction = run.translate_batch([_NUMBER.value], places=["--number"])[0]
        _say(table and prediction.answer)
        return [_record(_NUMBER.value, prediction)]
    if asked == "sample":
        texts = run.sample(_SAMPLE.value, temperature=_TEMPERATURE.value, seed=_SEED.value)
        _say(table and "\n".join(texts))
        return [{"seed": _SEED.value + i, "answer": t} for i, t in enumerate(texts)]
    if asked == "eval_example":
        image, truth = inference.eval_strip(run, _EVAL_EXAMPLE.value)
        if _WRITE_PNG.value:
            inference.write_strip(_WRITE_PNG.value, image)
        prediction = run.caption_batch(image[None])[0]
        _say(table and f"{prediction.answer}    (true caption: {truth})")
        return [{**_record(f"eval_example {_EVAL_EXAMPLE.value}", prediction), "truth": truth}]
    if asked == "image":
        paths = inputs.image_paths(_IMAGE.value + extra)
        progress = _Progress(len(paths), run.batch_size())
        answers = (run.classify_image_files(paths, top_k=_TOP_K.value)
                   if run.task == "classify_images" else run.caption_files(paths))
        single = len(paths) == 1 and not os.path.isdir(_IMAGE.value[0])
        return _stream(answers, progress, table, single, lines=None)
    if asked == "clip":
        paths = inputs.clip_paths(_CLIP.value + extra, run.frame_shape)
        progress = _Progress(len(paths), run.batch_size())
        records = _stream(run.classify_clip_files(paths), progress, table, len(paths) == 1,
                          lines=None)
        for record in records:
            if record.get("truncated"):
                print(f"note: {record['input']}: only its first {run.max_length} frames "
                      "were classified (the run's clip length)", file=sys.stderr)
        return records
    return _answer_file(run, inputs, table)


def _answer_file(run, inputs, table: bool) -> list[dict]:
    path = _INPUT_FILE.value
    lines = inputs.read_lines(path)
    progress = _Progress(len(lines.texts), run.batch_size())
    if run.task == "translate":  # every number is checked before any is translated
        predictions = run.translate_batch(
            lines.texts, places=[f"{path} line {n}" for n in lines.numbers],
            progress=progress.update)
    else:
        predictions = run.classify_batch(lines.texts, top_k=_TOP_K.value,
                                         progress=progress.update)
    progress.close()
    lines.truncated = [n for n, p in zip(lines.numbers, predictions) if p.truncated]
    for note in inputs.note(lines, path, run.max_length):
        print(f"note: {note}", file=sys.stderr)
    return _stream(zip(lines.texts, predictions), None, table, False, lines.numbers)


def _stream(answers, progress, table: bool, single: bool, lines) -> list[dict]:
    """Prints (or collects) each (input, prediction) as it comes."""
    records = []
    for n, (given, prediction) in enumerate(answers):
        record = _record(given, prediction)
        if lines is not None:
            record = {"input": given, "line": lines[n], **record}
        records.append(record)
        if table:
            print(_classes(prediction) if single else _row(given, prediction), flush=False)
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    sys.stdout.flush()
    return records


def _record(given, prediction) -> dict:
    record = {"input": given, "answer": prediction.answer,
              "probability": prediction.probability}
    if prediction.top:
        record["top"] = [list(pair) for pair in prediction.top]
    if prediction.frames:
        record["frames"] = [list(pair) for pair in prediction.frames]
    if prediction.truncated:
        record["truncated"] = True
    return record


def _classes(prediction) -> str:
    if prediction.frames:
        return " ".join(f"{name} ({p:.0%})" for name, p in prediction.frames)
    if not prediction.top:
        return prediction.answer
    return ", ".join(f"{name} ({p:.1%})" for name, p in prediction.top)


def _row(given: str, prediction) -> str:
    cells = [given.replace("\t", " "), prediction.answer, f"{prediction.probability:.4f}"]
    for name, p in prediction.top[1:]:
        cells += [name, f"{p:.4f}"]
    return "\t".join(cells)


def _say(text) -> None:
    if text is not False:
        print(text)


class _Output:
    """--output: checked writable before the model loads, written whole at the end."""

    def __init__(self, path: str, inputs=()):
        self.path = os.path.abspath(path)
        if any(given and given != "-" and os.path.abspath(given) == self.path
               for given in inputs):
            raise ValueError(f"--output={path} is the input file: give another path")
        if os.path.isdir(self.path):
            raise ValueError(f"--output={path} is a directory: give a file path")
        folder = os.path.dirname(self.path)
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise ValueError(f"--output={path}: cannot write in {folder} ({e.strerror}): "
                             "give a writable path") from None

    def write(self, records: list[dict]) -> int:
        fd, tmp = tempfile.mkstemp(prefix=".predict.", dir=os.path.dirname(self.path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        return len(records)


class _Progress:
    """A progress bar on stderr: `[predict] 12,800/50,000 (26%) | 8,114/s | ETA 5s`."""

    def __init__(self, total: int, batch: int):
        shown = _PROGRESS.value
        self.on = shown if shown is not None else (sys.stderr.isatty() and total > batch)
        self.total, self.done, self.start, self.last = total, 0, time.perf_counter(), 0.0

    def update(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.on and (now - self.last > 0.2 or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            from jaxnets.train.reporting import format_duration  # pylint: disable=g-import-not-at-top
            eta = format_duration((self.total - self.done) / max(rate, 1e-9))
            print(f"\r[predict] {self.done:,}/{self.total:,} "
                  f"({100 * self.done / max(self.total, 1):.0f}%) | {rate:,.0f}/s | ETA {eta}",
                  end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.on:
            print(file=sys.stderr, flush=True)
            self.on = False


if __name__ == "__main__":
    cli.run(main)
