"""Your own model with the defaults around it: not a preset, the file behind
`--model=package.module:factory`.

    python -m jaxnets.experiments.run --model=my_pkg.nets:make_net --dataset=mnist5k
    python -m jaxnets.experiments.run \
        --config=jaxnets/configs/custom.py:my_pkg.nets:make_net --dataset=mnist5k

The run is named after the factory (runs/make_net).
"""

from jaxnets.train.config import default_config


def get_config(model: str):
    c = default_config()
    c.model = model
    c.preset = model.rpartition(":")[2]
    return c
