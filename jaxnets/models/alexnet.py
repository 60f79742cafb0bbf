"""AlexNet (Krizhevsky et al. 2012) exactly as the lecture's table.

Single-tower ("simplified") AlexNet, 62,378,344 parameters for 1000 classes:

  [227x227x3]  INPUT
  [55x55x96]   CONV1: 96 11x11 filters at stride 4, pad 0
  [27x27x96]   MAX POOL1: 3x3 filters at stride 2
  [27x27x96]   NORM1: local response normalization
  [27x27x256]  CONV2: 256 5x5 filters at stride 1, pad 2
  [13x13x256]  MAX POOL2: 3x3 filters at stride 2
  [13x13x256]  NORM2: local response normalization
  [13x13x384]  CONV3: 384 3x3 filters at stride 1, pad 1
  [13x13x384]  CONV4: 384 3x3 filters at stride 1, pad 1
  [13x13x256]  CONV5: 256 3x3 filters at stride 1, pad 1
  [6x6x256]    MAX POOL3: 3x3 filters at stride 2
  [4096]       FC6: 4096 neurons
  [4096]       FC7: 4096 neurons
  [1000]       FC8: 1000 neurons (class scores)

ReLU after every conv and hidden FC; dropout 0.5 on FC6 and FC7 in training.
"""

from jaxnets.models.cnn import Conv, Dense, LocalResponseNorm, MaxPool, SequentialCNN

INPUT_SHAPE = (227, 227, 3)


def alexnet_layers(num_classes: int = 1000) -> tuple:
    return (
        Conv("CONV1", 96, 11, stride=4, padding=0),
        MaxPool("POOL1", 3, stride=2),
        LocalResponseNorm("NORM1", size=5, k=2.0, alpha=1e-4, beta=0.75),
        Conv("CONV2", 256, 5, stride=1, padding=2),
        MaxPool("POOL2", 3, stride=2),
        LocalResponseNorm("NORM2", size=5, k=2.0, alpha=1e-4, beta=0.75),
        Conv("CONV3", 384, 3, stride=1, padding=1),
        Conv("CONV4", 384, 3, stride=1, padding=1),
        Conv("CONV5", 256, 3, stride=1, padding=1),
        MaxPool("POOL3", 3, stride=2),
        Dense("FC6", 4096, dropout=0.5),
        Dense("FC7", 4096, dropout=0.5),
        Dense("FC8", num_classes, relu=False),  # class scores
    )


def AlexNet(num_classes: int = 1000, input_shape=INPUT_SHAPE, dtype=None) -> SequentialCNN:
    return SequentialCNN(alexnet_layers(num_classes), tuple(input_shape), dtype=dtype)
