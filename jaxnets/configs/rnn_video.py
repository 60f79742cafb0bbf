"""Many-to-many (synced): video classification on frame level, real digits that move and vanish.

Clips of 10-20 frames in which real MNIST digits move, vanish under blanks or noise, and
change; every frame is labelled with the last digit seen ('none' before any), so the
blank and hidden frames can only be labelled from memory. A small CNN encodes each
frame into x_t, the vanilla RNN h_t = tanh(W_hh h_{t-1} + W_xh x_t + b) carries what
was seen, and y_t = W_hy h_t scores every frame (the per-step loss). The digits and
labels are real (mnist5k); the clips are constructed (jaxnets/data/digit_video.py), and
the 1,000 test clips use only the 1,000 test digits. Reported: per-frame accuracy, and
apart, the accuracy on the memory frames; clip.png shows one test clip, predicted.

Command:
    python -m jaxnets.experiments.run --model=rnn_video

Result: experiments/results.md (generated from the recorded run in experiments/rnn_video/),
with the same CNN without recurrence beside it in experiments/rnn_video/README.md.
`--config.model_kwargs.recurrent=False` trains that baseline.
"""

import ml_collections

from jaxnets.train.config import default_config

LECTURE_MODE = "many to many, synced (a class per frame: video classification on frame level)"
DATA = "digit_video: 4,000 clips (10-20 frames) of real mnist5k digits that move and vanish"


def get_config():
    c = default_config()
    c.preset = "rnn_video"
    c.model = "rnn_frame_classifier"
    c.model_kwargs = ml_collections.ConfigDict(
        {"embed_dim": 64, "hidden_size": 128, "cell": "vanilla"})
    c.dataset = "digit_video"
    c.batch_size = 32
    c.eval_batch_size = 500
    c.num_epochs = 5
    c.optimizer = "adam"
    c.learning_rate = 5e-3
    c.schedule = "cosine"
    c.grad_clip_norm = 1.0
    c.log_every_steps = 50
    c.checkpoint_every_steps = 1000
    return c
