"""A vanilla RNN sentiment classifier on the embedded Rotten Tomatoes sentences.

The lecture's many-to-one RNN: embed words, run h_t = tanh(W_hh h_{t-1} + W_xh x_t),
classify the final hidden state. ~10.5k sentences (vaderSentiment sdist), binary.

Command:
    python -m jaxnets.experiments.run --model=rnn_sentiment

Result: experiments/results.md (generated from the recorded run in experiments/rnn_sentiment/).
Without its dropout it overfits (experiments/rnn_sentiment/README.md).
`--dataset=glue/sst2` or `--dataset=imdb_reviews` use TFDS (internet the first time);
`--config.model_kwargs.cell=lstm` swaps the cell; `--config.smoke=True` runs 8 tiny steps.
"""

import ml_collections

from jaxnets.train.config import default_config

LECTURE_MODE = "many to one (words -> sentiment)"
DATA = "10,568 Rotten Tomatoes sentences (vaderSentiment)"


def get_config():
    c = default_config()
    c.preset = "rnn_sentiment"
    c.model = "rnn_classifier"
    c.model_kwargs = ml_collections.ConfigDict(
        {"embed_dim": 64, "hidden_size": 128, "cell": "vanilla",
         "dropout": 0.5, "embed_dropout": 0.3})  # 9.5k sentences: without dropout it overfits
    c.dataset = "rt_sentences"
    c.max_length = 48
    c.vocab_size = 10000
    c.batch_size = 64
    c.eval_batch_size = 500
    c.num_epochs = 5
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.schedule = "cosine"
    c.grad_clip_norm = 1.0      # a vanilla RNN's gradients can explode through time
    c.log_every_steps = 74       # half an epoch (148 steps)
    c.checkpoint_every_steps = 370
    c.steps_per_call = 37        # ~1 ms steps: 4 calls an epoch keep the input stall < 1%
    return c
