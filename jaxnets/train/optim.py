"""Optimisers and learning-rate schedules, built from a config with optax.

    optimizer  update of a parameter w with gradient g at step t (lr = schedule(t))
    sgd        w <- w - lr * g
    momentum   v <- m * v + g;  w <- w - lr * v            (nesterov: lr * (g + m * v))
    adam       w <- w - lr * m_hat / (sqrt(v_hat) + eps)   (b1 = config.momentum, b2)
    adamw      adam, then w <- w - lr * weight_decay * w   (decoupled decay)

For sgd, momentum and adam, `weight_decay` adds `weight_decay * w` to the
gradient (classic L2, as in the AlexNet paper). Decay is never applied to
biases or norm scales: only to leaves with ndim >= 2 (kernels, embeddings).
Gradients are clipped to `grad_clip_norm` by global norm first, when set.

    schedule       lr(t) over a run of T steps
    constant       lr
    cosine         lr * (1 + cos(pi * t / T)) / 2
    warmup_cosine  lr * t / W for t < W, then cosine from lr to 0 over T - W
    step           lr * step_factor ** (number of boundaries b * T passed)

Example:
    >>> from jaxnets.train.config import default_config
    >>> tx, schedule = make_optimizer(default_config(), total_steps=1000)
    >>> float(schedule(0))
    0.001
"""

from __future__ import annotations

import math

import jax
import optax

from jaxnets.train.config import OPTIMIZERS, SCHEDULES, ConfigError


def decay_mask(params):
    """True for the leaves weight decay applies to: ndim >= 2 (not biases or norms)."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_schedule(config, total_steps: int) -> optax.Schedule:
    """The learning rate as a function of the step, for a run of `total_steps`."""
    lr, name = config.learning_rate, config.schedule
    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=max(total_steps, 1))
    if name == "warmup_cosine":
        if not 0 <= config.warmup_steps < total_steps:
            raise ConfigError(f"warmup_steps={config.warmup_steps} must be in "
                              f"[0, {total_steps}) for a run of {total_steps} steps: lower it "
                              f"(--config.warmup_steps={total_steps // 10}) or train longer")
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, warmup_steps=config.warmup_steps, decay_steps=total_steps)
    if name == "step":  # from the first step at or past each fraction f of the run
        boundaries = {}
        for f in config.step_boundaries:  # (the tolerance: 0.57 * 100 is 56.99999999999999)
            step = math.ceil(f * total_steps - 1e-9)
            boundaries[step] = boundaries.get(step, 1.0) * config.step_factor  # may coincide
        return optax.piecewise_constant_schedule(lr, boundaries)
    raise ConfigError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")


def _base_optimizer(config, schedule) -> optax.GradientTransformation:
    name, b1 = config.optimizer, config.momentum
    if name == "sgd":
        return optax.sgd(schedule)
    if name == "momentum":
        return optax.sgd(schedule, momentum=b1, nesterov=config.nesterov)
    if name == "adam":
        return optax.adam(schedule, b1=b1, b2=config.b2)
    if name == "adamw":
        return optax.adamw(schedule, b1=b1, b2=config.b2,
                           weight_decay=config.weight_decay, mask=decay_mask)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def make_optimizer(config, total_steps: int):
    """(optax transformation, schedule) for `config` and a run of `total_steps`."""
    schedule = make_schedule(config, total_steps)
    parts = []
    if config.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
    if config.weight_decay > 0 and config.optimizer != "adamw":
        parts.append(optax.add_decayed_weights(config.weight_decay, mask=decay_mask))
    parts.append(_base_optimizer(config, schedule))
    return optax.chain(*parts), schedule
