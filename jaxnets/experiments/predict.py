r"""Use a finished run: classify a sentence, translate a number, caption an image, sample text.

  python -m jaxnets.experiments.predict --workdir=runs/rnn_sentiment --text="a gorgeous, witty film"
  python -m jaxnets.experiments.predict --workdir=runs/rnn_translate --number=1234
  python -m jaxnets.experiments.predict --workdir=runs/rnn_captions --image=strip.png
  python -m jaxnets.experiments.predict --workdir=runs/rnn_captions --eval_example=7 --write_png=strip.png
  python -m jaxnets.experiments.predict --workdir=runs/rnn_charlm --sample=3

The run's checkpoint, model.json and vocab.json are read from --workdir
(see jaxnets/inference.py). A question the run cannot answer is one line, exit 2.
"""

from absl import flags

from jaxnets import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The --workdir of a finished run.", required=True)
_TEXT = flags.DEFINE_string("text", None, "A sentence to classify (rnn_sentiment runs).")
_NUMBER = flags.DEFINE_string("number", None, "0..9999 to write in words (rnn_translate runs); "
                              "with a TFDS translation run, any source sentence.")
_IMAGE = flags.DEFINE_string("image", None, "A PNG of 1-4 white-on-black digits to caption.")
_EVAL_EXAMPLE = flags.DEFINE_integer("eval_example", None,
                                     "Caption test strip K of the run's dataset.")
_WRITE_PNG = flags.DEFINE_string("write_png", None, "With --eval_example: save the strip here.")
_SAMPLE = flags.DEFINE_integer("sample", None, "Sample this many texts (rnn_charlm runs).",
                               lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature (> 0).")

TASKS = {"rnn_classifier": "text", "seq2seq": "number", "rnn_captioner": "image",
         "rnn_lm": "sample"}  # model -> the question it answers


def _task_of(run) -> str:
    model = run.config["model"]
    if model not in TASKS:
        raise ValueError(f"{_WORKDIR.value} holds a {model} run ({run.config['preset']}); "
                         "predict answers the RNN presets' runs: rnn_sentiment, "
                         "rnn_translate, rnn_captions, rnn_charlm")
    return TASKS[model]


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; use --flag=value")
    asked = {"text": _TEXT.value, "number": _NUMBER.value, "sample": _SAMPLE.value,
             "image": _IMAGE.value if _EVAL_EXAMPLE.value is None else _EVAL_EXAMPLE.value}
    asked = {k: v for k, v in asked.items() if v is not None}
    if len(asked) != 1:
        raise ValueError("give exactly one of --text, --number, --image/--eval_example, --sample")
    if not _TEMPERATURE.value > 0 or _TEMPERATURE.value == float("inf"):  # NaN fails too
        raise ValueError(f"--temperature={_TEMPERATURE.value}: give a finite number > 0")
    if "text" in asked and not asked["text"].strip():
        raise ValueError("--text is empty: give a sentence to classify")
    if _WRITE_PNG.value is not None and _EVAL_EXAMPLE.value is None:
        raise ValueError("--write_png saves an --eval_example's strip: give --eval_example "
                         "too (an --image is a file already)")
    if _WRITE_PNG.value is not None and not _WRITE_PNG.value.lower().endswith(".png"):
        raise ValueError(f"--write_png={_WRITE_PNG.value}: give a path ending in .png")
    from jaxnets import inference
    run = inference.load_run(_WORKDIR.value)
    (question, value), task = next(iter(asked.items())), _task_of(run)
    if question != task:
        raise ValueError(f"{_WORKDIR.value} holds a {run.config['model']} run "
                         f"({run.config['preset']}): ask it with --{task}, not --{question}")
    if question == "text":
        label, prob = run.classify(value)
        print(f"{label} ({prob:.1%})")
    elif question == "number":
        print(run.translate(value))
    elif question == "sample":
        print("\n".join(run.sample(value, temperature=_TEMPERATURE.value)))
    else:
        _caption(run, inference)


def _caption(run, inference):
    if _EVAL_EXAMPLE.value is None:
        image = inference.read_strip(_IMAGE.value, tuple(run.sizes["input_shape"]))
        print(run.caption(image))
        return
    image, truth = inference.eval_strip(run, _EVAL_EXAMPLE.value)
    if _WRITE_PNG.value:
        inference.write_strip(_WRITE_PNG.value, image)
    print(f"{run.caption(image)}    (true caption: {truth})")


if __name__ == "__main__":
    cli.run(main)
