"""LeNet-5 (LeCun et al. 1998) as in the lecture: [CONV-POOL-CONV-POOL-FC-FC].

Conv filters are 5x5 at stride 1, subsampling is 2x2 max pooling at stride 2.
On a 32x32x1 input: 28x28x6 -> 14x14x6 -> 10x10x16 -> 5x5x16 -> 120 -> 84 -> 10,
61,706 parameters. ReLU replaces the original's scaled tanh (a modern choice
that trains faster; it changes no shape or count).
"""

from jaxnets.models.cnn import Conv, Dense, MaxPool, SequentialCNN

INPUT_SHAPE = (32, 32, 1)


def lenet_layers(num_classes: int = 10) -> tuple:
    return (
        Conv("CONV1", 6, 5),
        MaxPool("POOL1", 2, stride=2),
        Conv("CONV2", 16, 5),
        MaxPool("POOL2", 2, stride=2),
        Dense("FC3", 120),
        Dense("FC4", 84),
        Dense("FC5", num_classes, relu=False),  # class scores
    )


def LeNet(num_classes: int = 10, input_shape=INPUT_SHAPE, dtype=None) -> SequentialCNN:
    return SequentialCNN(lenet_layers(num_classes), tuple(input_shape), dtype=dtype)
