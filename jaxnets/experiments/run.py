"""Train and evaluate one experiment.

    python -m jaxnets.experiments.run --model=lenet_mnist
    python -m jaxnets.experiments.run --model=rnn_sentiment --epochs=2 --workdir=/tmp/rnn
    python -m jaxnets.experiments.run --model=my_pkg.models:make_net --dataset=mnist5k
    python -m jaxnets.experiments.run --model=lenet_mnist --config.smoke=True
    python -m jaxnets.experiments.run --model=list

Every config field can be overridden with --config.<field>=<value> (see
jaxnets/train/config.py). Running the same command again on the same
--workdir resumes from its newest checkpoint. TensorFlow (tf.data only) is
imported by jaxnets.data alone, with its GPUs hidden from it.
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging
from ml_collections import config_flags

from jaxnets.experiments import cli, presets
from jaxnets.train.config import OPTIMIZERS, ConfigError, default_config

_MODEL = flags.DEFINE_string(
    "model", "lenet_mnist", "A preset (--model=list shows them) or package.module:factory "
    "for your own model (a flax module or an (init, apply) pair).")
_DATASET = flags.DEFINE_string("dataset", None, "A jaxnets.data dataset, e.g. mnist5k, mnist.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Logs and checkpoints (default runs/<preset>).")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Train for this many epochs.")
_STEPS = flags.DEFINE_integer("steps", None, "Train for this many steps (wins over epochs).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Training batch size.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Peak learning rate.")
_OPTIMIZER = flags.DEFINE_enum("optimizer", None, list(OPTIMIZERS), "The optimizer.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of initialisation, dropout and shuffling.")
_CONFIG = config_flags.DEFINE_config_dict(
    "config", default_config(), "Overrides: --config.<field>=<value>.",
    lock_config=False, accept_new_attributes=True)


def main(argv) -> int:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}; "
                          "flags look like --name=value")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax and TFDS log every file at INFO
    if _MODEL.value == "list":
        print("\n".join(presets.describe()))
        return 0
    flag_values = {name: flags.FLAGS[name].value for name in presets.FLAG_FIELDS}
    config = presets.build_config(_MODEL.value, flag_values,
                                  config_flags.get_override_values(flags.FLAGS["config"]))
    workdir = _WORKDIR.value or os.path.join("runs", config.preset)

    from jaxnets.data import DatasetUnavailableError
    from jaxnets.train import NonFiniteError, train_and_evaluate
    try:
        result = train_and_evaluate(config, workdir)
    except (NonFiniteError, DatasetUnavailableError) as e:  # not a usage error: status 1
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ConfigError:
        raise  # a usage error: one line, exit 2
    except ValueError as e:  # a bug, not a usage error: keep the traceback
        raise RuntimeError(f"training failed: {e}") from e
    if not config.progress:
        print(result.summary_line)
    return 0


if __name__ == "__main__":
    cli.run(main)
