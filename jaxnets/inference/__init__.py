"""Using a trained model: load a finished run, ask it many questions at once, export it.

A run's workdir holds everything needed: `config.json` (what was trained),
`model.json` (the model factory and the sizes it was built with),
`vocab.json` (the token ids) and `checkpoints/` (the parameters).

    run = load_run("runs/rnn_translate")
    run.translate("1234")                   # 'one thousand two hundred thirty four'
    run.translate_batch(["7", "12"])        # [Prediction('seven', 0.99...), ...]
    load_run("runs/rnn_sentiment").classify("a gorgeous, witty film")  # ('positive', 0.761)

  run.py       Run and load_run: classify / translate / caption / sample, one or many
  programs.py  the batch path: one jitted program per task, bucketed shapes, eval's padding
  inputs.py    reading and checking texts, numbers and images as training read its data
  export.py    the program, parameters and vocabulary for a program without jaxnets
  decoding.py  greedy decoding over eval batches (training's exact match), sampling
  frames.py    frame-level video runs: accuracy on the memory frames, a clip's picture
  serve.py     the standalone loader an export ships (jax and numpy only)

Decoding is greedy (argmax at every step) for captioning and translation,
and sampled for the language model. No TensorFlow is needed here.
"""

from jaxnets.inference.decoding import (exact_match, exact_matches, generate,
                                        generation_inputs, sample_text)
from jaxnets.inference.inputs import read_strip, write_strip
from jaxnets.inference.run import SENTIMENT_NAMES, Prediction, Run, eval_strip, load_run

__all__ = ["Prediction", "Run", "SENTIMENT_NAMES", "eval_strip", "exact_match",
           "exact_matches", "generate", "generation_inputs", "load_run", "read_strip",
           "sample_text", "write_strip"]
