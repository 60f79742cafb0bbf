"""AlexNet (Krizhevsky et al. 2012) at 227x227x3: TFDS imagenette when prepared, else a smoke run.

With imagenette prepared in the TFDS data dir ($TFDS_DATA_DIR or ~/tensorflow_datasets):
    python -m jaxnets.experiments.run --model=alexnet
trains on 10 ImageNet classes with the paper's recipe (SGD momentum 0.9, weight decay
5e-4, lr 0.01 divided by 10 twice). Not measured here: these machines have no internet
and no GPU to run it in reasonable time.

Without imagenette, the same command is an honest SMOKE RUN on CPU: AlexNet trains for a
few dozen steps on the embedded 5k MNIST digits, upscaled to 227x227x3. It proves that
data, model, loop, checkpoints and reports work together; its accuracy means nothing.
This stand-in's preset name is alexnet_mnist (its workdir runs/alexnet_mnist, with
--config.smoke=True runs/alexnet_mnist_smoke). Result: experiments/results.md (generated from the recorded run in experiments/alexnet_mnist/).
"""

import os

from jaxnets.train.config import default_config

LECTURE_MODE = "one to one (an image -> its class)"
DATA = ("imagenette (TFDS); offline: 5,000 MNIST digits upscaled to 227x227x3, a smoke run "
        "whose accuracy means nothing")
RECORDS = ("alexnet", "alexnet_mnist")  # record folders: with imagenette; offline stand-in

IMAGENETTE = "imagenette/320px-v2"


def imagenette_prepared(data_dir: str = "") -> bool:
    """True when TFDS imagenette was downloaded and prepared (no network is touched)."""
    root = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
        "~/tensorflow_datasets")
    return os.path.isdir(os.path.join(root, IMAGENETTE))


def _common():
    c = default_config()
    c.model = "alexnet"
    c.image_shape = (227, 227, 3)
    c.optimizer = "momentum"
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.smoke_overrides.update({"num_steps": 2, "warmup_steps": 0, "batch_size": 2,
                              "eval_batch_size": 2,
                              "log_every_steps": 1, "checkpoint_every_steps": 2,
                              "eval_max_batches": 1})
    return c


def get_config():
    c = _common()
    if imagenette_prepared():
        c.preset = "alexnet"
        c.dataset = IMAGENETTE
        c.batch_size = 128
        c.eval_batch_size = 250
        c.num_epochs = 30
        c.learning_rate = 0.01
        c.schedule = "step"
        c.step_boundaries = (0.5, 0.8)
        c.log_every_steps = 50
        c.checkpoint_every_steps = 500
        return c
    c.preset = "alexnet_mnist"  # not "_smoke": --config.smoke=True adds that
    c.note = ("SMOKE RUN: imagenette is not prepared, so AlexNet trains briefly on the "
              "embedded MNIST digits upscaled to 227x227x3; this tests the pipeline, "
              "its accuracy means nothing")
    c.dataset = "mnist5k"
    c.batch_size = 16
    c.eval_batch_size = 100
    c.num_steps = 40
    c.learning_rate = 0.01
    c.schedule = "constant"
    c.log_every_steps = 10
    c.checkpoint_every_steps = 20
    return c
