"""Sequence-to-sequence: digits to English number words (a CONSTRUCTED task), vanilla RNNs.

An encoder RNN reads "1234"; its final hidden state is the decoder's h_0; the decoder
writes "one thousand two hundred thirty four" word by word (teacher forcing in
training, greedy decoding at evaluation). Every number 0..9999 exists once; the 1,000
test numbers are never seen in training. Measured by exact match of the whole output.

Command:
    python -m jaxnets.experiments.run --model=rnn_translate

Result: experiments/results.md (generated from the recorded run in experiments/rnn_translate/).
`--dataset=ted_hrlr_translate/pt_to_en` translates Portuguese TED talks to English (TFDS,
internet the first time; word level, vocabularies from its train split).
"""

import ml_collections

from jaxnets.train.config import default_config

LECTURE_MODE = "many to many (a sequence -> a sequence)"
DATA = "digits -> number words (constructed)"


def get_config():
    c = default_config()
    c.preset = "rnn_translate"
    c.model = "seq2seq"
    c.model_kwargs = ml_collections.ConfigDict(  # vocabulary sizes come from the data
        {"embed_dim": 32, "hidden_size": 128, "cell": "vanilla"})
    c.dataset = "number_words"
    c.batch_size = 64
    c.eval_batch_size = 500
    c.num_epochs = 20
    c.optimizer = "adam"
    c.learning_rate = 3e-3
    c.schedule = "cosine"
    c.grad_clip_norm = 1.0
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
    c.steps_per_call = 20        # ~1 ms steps: 7 calls an epoch (140 steps) keep the input
                                 # stall < 1%
    return c
