"""The training engine: state, pure steps, optax, the loop, checkpoints, reports.

    from jaxnets.train import fit, ArrayData
    result = fit(my_flax_module, ArrayData(train_arrays, eval_arrays, batch_size=64),
                 {"num_epochs": 5, "learning_rate": 1e-3}, workdir="runs/mine")

`train_and_evaluate(config, workdir)` is the same loop for a config that names
a `jaxnets.models` model and a `jaxnets.data` dataset (what the CLI runs).

Names are imported on first use, so `jaxnets.train.config` loads without JAX
(the CLI answers a bad flag in a fraction of a second).
"""

import importlib

_EXPORTS = {
    "ArrayData": "inputs", "ConfigError": "config", "default_config": "config",
    "FlaxModel": "model_api", "FunctionalModel": "model_api", "Model": "model_api",
    "as_model": "model_api", "NonFiniteError": "trainer", "Result": "loop", "fit": "loop",
    "Trainer": "trainer", "RunDir": "rundir", "StallMeter": "meter",
    "TrainState": "state", "create_state": "state", "eval_step": "steps",
    "train_step": "steps", "train_and_evaluate": "experiment",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jaxnets.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"jaxnets.train.{_EXPORTS[name]}"), name)
