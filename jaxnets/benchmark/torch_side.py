"""The same workloads in PyTorch eager on the CPU: what a user would use instead.

Same architecture, batch, loss and optimiser as jaxnets (SGD with momentum and weight
decay on kernels only; Adam with gradient clipping for the RNN), and the same thread
count. PyTorch gets its best: `torch.set_flush_denormal(True)` (its RNN backward slows
5-7x on denormals otherwise), and OpenMP threads that sleep instead of spinning when
idle (`OMP_WAIT_POLICY=PASSIVE`, set before torch is imported unless already set: on a
machine shared with other jobs, spinning threads that lose their core make a LeNet step
take 260 ms instead of 15 ms). Optional: `pip install torch==2.13.0` (the `bench` extra).
"""

from __future__ import annotations

import os
from typing import Callable


def available() -> bool:
    try:
        import importlib.util  # pylint: disable=g-import-not-at-top
        return importlib.util.find_spec("torch") is not None
    except ImportError:
        return False


def prepare() -> None:
    """Sets what must be set before torch is first imported (its OpenMP reads it once)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def setup(threads: int):
    """Imports torch configured as described above; returns the module."""
    prepare()
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    return torch


def _lenet(nn, classes):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, classes))


def _alexnet(nn, classes, shape):
    norm = lambda: nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)  # noqa: E731
    # torch's alpha multiplies the mean of the 5 squares; jaxnets' (the paper's) the sum
    features = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2), norm(),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2), norm(),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten())
    import torch  # pylint: disable=g-import-not-at-top
    with torch.no_grad():
        width = features(torch.zeros(1, shape[2], shape[0], shape[1])).shape[1]
    return nn.Sequential(
        features, nn.Linear(width, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, classes))


def _rnn(nn, sizes):
    class RNNClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(sizes["vocab"], sizes["embed_dim"])
            self.embed_dropout = nn.Dropout(sizes.get("embed_dropout", 0.0))
            kind = {"vanilla": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[sizes["cell"]]
            self.rnn = kind(sizes["embed_dim"], sizes["hidden_size"], batch_first=True)
            self.dropout = nn.Dropout(sizes.get("dropout", 0.0))
            self.out = nn.Linear(sizes["hidden_size"], 2)

        def forward(self, tokens):
            _, h = self.rnn(self.embed_dropout(self.embed(tokens)))
            h = h[0] if isinstance(h, tuple) else h                   # LSTM: (h, c)
            return self.out(self.dropout(h[0]))

    return RNNClassifier()


def _optimizer(torch, model, config):
    """The preset's optimiser: weight decay on kernels only (ndim >= 2), like optax's mask."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": other, "weight_decay": 0.0}]
    if config.optimizer == "momentum":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.learning_rate,
                                betas=(config.momentum, config.b2))
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate)
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.momentum, config.b2))


def torch_run(workload, threads: int) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """(train(n), infer(n)) runners for `workload` in PyTorch eager."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    torch = setup(threads)
    nn = torch.nn
    sizes = workload.torch_sizes
    if workload.torch_kind == "rnn":
        model = _rnn(nn, sizes)
        inputs = torch.from_numpy(workload.batch["tokens"].astype(np.int64))
    else:
        model = (_lenet(nn, sizes["classes"]) if workload.torch_kind == "lenet"
                 else _alexnet(nn, sizes["classes"], sizes["shape"]))
        inputs = torch.from_numpy(np.ascontiguousarray(
            workload.batch["image"].transpose(0, 3, 1, 2)))           # NHWC -> NCHW
    labels = torch.from_numpy(workload.batch["label"].astype(np.int64))
    config = workload.config
    optimizer = _optimizer(torch, model, config)
    loss_fn = nn.CrossEntropyLoss()

    def train(n):
        model.train()
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), labels)
            loss.backward()
            if config.grad_clip_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optimizer.step()

    def infer(n):
        model.eval()
        with torch.inference_mode():
            for _ in range(n):
                model(inputs)

    return train, infer
