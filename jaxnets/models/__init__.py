"""Model families. `MODELS` maps a name to a factory returning a Flax module.

Factories take keyword arguments (`num_classes`, `input_shape`, `dtype`, ...)
and build a module used only through `init`/`apply`. Registering a model is
one line here; nothing is registered by import side effects.
"""

from jaxnets.models.alexnet import AlexNet
from jaxnets.models.lenet import LeNet

MODELS = {
    "lenet": LeNet,
    "alexnet": AlexNet,
}


def get_model_factory(name: str):
    """The factory registered as `name`, or a ValueError listing the choices."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}"
        ) from None
