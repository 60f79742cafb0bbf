"""The one place jaxnets.data imports TensorFlow: lazily, CPU only, quiet."""

from __future__ import annotations

import logging
import os

from jaxnets.import_guard import without_module

_configured = False


def import_tf():
    """Imports TensorFlow (~2 s, ~650 MB the first time) with its GPUs hidden, without Keras.

    TF only runs tf.data here; if it saw the GPUs it would grab their memory and compete
    with JAX, so it is told they do not exist before it touches them.
    """
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # hide TF's INFO chatter
    with without_module("keras"):  # TF would import Keras: 0.6 s (import_guard.py)
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if not _configured:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # TF already initialized its devices elsewhere
            if tf.config.list_physical_devices("GPU"):
                logging.warning(
                    "TensorFlow was initialized with GPUs visible before jaxnets.data could "
                    "hide them, so it may take GPU memory from JAX: call "
                    "tf.config.set_visible_devices([], 'GPU') before any other TF use")
        _configured = True
    return tf
