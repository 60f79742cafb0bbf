"""Importing a library without the optional heavy package it would import but we never use.

    with without_module("keras"):
        import tensorflow      # TensorFlow skips Keras when Keras cannot be imported

Two libraries import a package at import time only "in case", and each time it costs
every run's start on this project's 2-core CPU (experiments/benchmarks/speedups.md):
TensorFlow imports Keras (0.6 s, with matplotlib and IPython) so that Keras' optimizers
are registered for SavedModels; tensorboardX imports PyTorch (1.4 s) to accept torch
tensors. jaxnets uses neither. Both libraries catch the ImportError and carry on.
"""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def without_module(name: str):
    """Inside the block `import name` raises ImportError; afterwards it imports as usual.

    A module imported already is left as it is. The block affects every thread of the
    process: use it before other threads could import `name`.
    """
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # the import system's "not importable" marker
    try:
        yield
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
