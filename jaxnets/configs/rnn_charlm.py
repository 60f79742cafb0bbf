"""Many-to-many: a character-level vanilla RNN language model on the Rotten Tomatoes text.

At every step the RNN reads one character and scores the next (y_t = W_hy h_t); the
loss is the lecture's per-step cross-entropy, summed over steps and averaged over the
real characters. Reported as bits per character on the test sentences, with samples.

Command:
    python -m jaxnets.experiments.run --model=rnn_charlm

Result: experiments/results.md (generated from the recorded run in experiments/rnn_charlm/).
"""

import ml_collections

from jaxnets.train.config import default_config

LECTURE_MODE = "many to many, synced (a character -> the next, at every step)"
DATA = "the same sentences, per character"


def get_config():
    c = default_config()
    c.preset = "rnn_charlm"
    c.model = "rnn_lm"
    c.model_kwargs = ml_collections.ConfigDict(
        {"embed_dim": 32, "hidden_size": 256, "cell": "vanilla"})
    c.dataset = "rt_chars"
    c.batch_size = 32
    c.eval_batch_size = 268
    c.num_epochs = 10
    c.optimizer = "adam"
    c.learning_rate = 2e-3
    c.schedule = "cosine"
    c.grad_clip_norm = 1.0
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
    return c
