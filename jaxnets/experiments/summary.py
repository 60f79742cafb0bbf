r"""Print the lecture's per-layer table for a CNN.

  python -m jaxnets.experiments.summary --model=alexnet
  python -m jaxnets.experiments.summary --model=lenet --input_shape=28x28x1

Each row: layer, output volume HxWxD, parameters, the lecture's FLOPs, and
XLA's own count for the layer compiled alone (see jaxnets/models/summary.py).
An impossible shape prints one line and exits with status 2.
"""

from absl import flags

from jaxnets import cli, conv_arithmetic
from jaxnets.models import cnn, get_model_factory, summary

_MODEL = flags.DEFINE_string("model", "alexnet", "CNN to summarize: lenet or alexnet.")
_INPUT_SHAPE = flags.DEFINE_string(
    "input_shape", None, "HxWxC input volume; default: the model's own (e.g. 227x227x3).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Classes of the last layer.")
_XLA = flags.DEFINE_bool("xla", True, "Compile each CONV/FC layer and show XLA's FLOPs.")


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; use --flag=value")
    kwargs = {} if _NUM_CLASSES.value is None else {"num_classes": _NUM_CLASSES.value}
    try:
        model = get_model_factory(_MODEL.value)(**kwargs)
    except TypeError:  # e.g. an RNN's factory, which needs a vocab_size
        model = None
    if not isinstance(model, cnn.SequentialCNN):
        raise ValueError(f"--model={_MODEL.value} is not a CNN; the table is for lenet, alexnet")
    shape = model.input_shape
    if _INPUT_SHAPE.value:
        shape = conv_arithmetic.parse_shape(_INPUT_SHAPE.value)
    rows = summary.summarize(model.layers, shape, check_xla=_XLA.value)
    print(summary.format_table(rows, shape, title=f"{_MODEL.value} on {conv_arithmetic.format_shape(shape)}"))


if __name__ == "__main__":
    cli.run(main)
