"""Model families. `MODELS` maps a name to a factory returning a Flax module.

Factories take keyword arguments (`num_classes`, `input_shape`, `dtype`, ...)
and build a module used only through `init`/`apply`. Registering a model is
one line here; nothing is registered by import side effects.
"""

from jaxnets.models.alexnet import AlexNet
from jaxnets.models.lenet import LeNet
from jaxnets.models.rnn_modes import (RNNCaptioner, RNNClassifier, RNNFrameClassifier,
                                      RNNLanguageModel, Seq2Seq)

MODELS = {
    "lenet": LeNet,
    "alexnet": AlexNet,
    "rnn_classifier": RNNClassifier,   # many-to-one
    "rnn_lm": RNNLanguageModel,        # many-to-many
    "rnn_captioner": RNNCaptioner,     # one-to-many
    "seq2seq": Seq2Seq,                # sequence-to-sequence
    "rnn_frame_classifier": RNNFrameClassifier,  # many-to-many, synced (video frames)
}


def get_model_factory(name: str):
    """The factory registered as `name`, or a ValueError listing the choices."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}"
        ) from None
