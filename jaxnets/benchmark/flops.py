"""Model FLOPs per example: the useful arithmetic, not what an implementation spends.

CNNs reuse the lecture's per-layer count (`jaxnets.models.cnn`, the same numbers as
the summary table): multiply-adds H2*W2*F*F*D1*D2 per CONV and in*out per FC,
x2 for FLOPs (one multiply, one add; XLA's cost analysis counts the same way).

    forward   = 2 * sum of the layers' multiply-adds
    training  = 3 * forward   (forward; then the gradients with respect to the
                               activations and to the weights, one matmul each)

That is the usual "model FLOPs" convention (6 per parameter per token for dense
layers). It is the work counted as achieved FLOP/s: a faster method that multiplies
zeros (the row-Toeplitz and space-to-depth convolutions of cnn.py) gets no credit
for them, and the first layer's input gradient, which nobody computes, is counted.

RNN (one example of T steps, G gates: 1 vanilla, 4 LSTM, 3 GRU):

    forward MACs = T * G*H * (D + H)   (W_xh x_t and W_hh h_{t-1})  +  H * classes
"""

from __future__ import annotations

from jaxnets.models import cnn

TRAIN_FACTOR = 3
GATES = {"vanilla": 1, "lstm": 4, "gru": 3}


def cnn_forward_macs(layers, input_shape) -> int:
    """The lecture's multiply-adds of one example through `layers`."""
    return sum(layer.flops(in_shape) for layer, in_shape, _ in cnn.layer_shapes(layers, input_shape))


def cnn_flops(model) -> dict[str, int]:
    """{'forward': ..., 'train': ...} FLOPs per example of a SequentialCNN."""
    forward = 2 * cnn_forward_macs(model.layers, model.input_shape)
    return {"forward": forward, "train": TRAIN_FACTOR * forward}


def rnn_classifier_flops(*, steps: int, embed_dim: int, hidden_size: int,
                         num_classes: int, cell: str = "vanilla") -> dict[str, int]:
    """{'forward': ..., 'train': ...} FLOPs per example of an RNNClassifier on `steps`
    real tokens (the embedding lookup is a copy, not arithmetic)."""
    gates = GATES[cell] * hidden_size
    macs = steps * gates * (embed_dim + hidden_size) + hidden_size * num_classes
    return {"forward": 2 * macs, "train": TRAIN_FACTOR * 2 * macs}
