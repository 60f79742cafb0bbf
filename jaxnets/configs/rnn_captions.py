"""One-to-many image captioning: strips of 1-4 real MNIST digits -> their number words.

A small CNN encodes the 28x112 strip into the RNN's h_0 = tanh(W x_cnn); the vanilla
RNN then emits "seven three ..." word by word (teacher forcing in training, greedy
decoding at evaluation). The digits and their labels are real (mnist5k); the strips
are constructed, and the 1,000 test strips use only the 1,000 test digits.
Measured by exact match of the whole caption.

Command:
    python -m jaxnets.experiments.run --model=rnn_captions

Result: experiments/results.md (generated from the recorded run in experiments/rnn_captions/).
"""

import ml_collections

from jaxnets.train.config import default_config

LECTURE_MODE = "one to many (an image -> words)"
DATA = "strips of 1-4 real MNIST digits -> their number words"


def get_config():
    c = default_config()
    c.preset = "rnn_captions"
    c.model = "rnn_captioner"
    c.model_kwargs = ml_collections.ConfigDict(
        {"embed_dim": 32, "hidden_size": 128, "cell": "vanilla"})
    c.dataset = "digit_captions"
    c.batch_size = 64
    c.eval_batch_size = 500
    c.num_epochs = 5
    c.optimizer = "adam"
    c.learning_rate = 2e-3
    c.schedule = "cosine"
    c.grad_clip_norm = 1.0
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
    return c
