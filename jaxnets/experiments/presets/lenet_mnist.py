"""LeNet-5 on the embedded 5k MNIST (4,000 train / 1,000 test digits, padded to 32x32).

Command:
    python -m jaxnets.experiments.run --model=lenet_mnist

After the CPU speed work (4bf4e22) the same command gives 97.80% (seed 0; 98.20% with
--seed=1): below the 98% bar, cause open (experiments/lenet_mnist/README.md). Before it:
Measured (2-core CPU, jax 0.10.2): 98.70% test accuracy, 50 s for the whole command
(--seed=1: 98.60%, --seed=2: 98.50%); record in experiments/lenet_mnist/README.md.
`--dataset=mnist` trains on TFDS MNIST (60k/10k; needs internet the first time).
`--config.smoke=True` runs 8 tiny steps (for tests).
"""

from jaxnets.train.config import default_config


def get_config():
    c = default_config()
    c.preset = "lenet_mnist"
    c.model = "lenet"
    c.dataset = "mnist5k"
    c.image_shape = (32, 32, 1)  # the lecture's LeNet input; 28x28 digits are padded
    c.augment = True             # random shifts: 4,000 digits alone overfit at ~97.4%
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
    return c
