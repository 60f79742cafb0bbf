"""Checkpoints: the train state plus the data position, with orbax.

Each checkpoint is a directory `<workdir>/checkpoints/<step>/` holding two
items: `state` (step, params, opt_state, model_state, rng; StandardSave) and
`position` (`{"step", "epoch", "batch_in_epoch"}`; JSON). Resuming means:
restore both, call the data's `train_epoch(epoch)` and skip `batch_in_epoch`
batches.

Safety: orbax writes a checkpoint to a temporary directory and marks it
complete (`commit_success.txt`/atomic rename) only when every file is
written; a checkpoint killed mid-write is ignored on restore. Old
checkpoints beyond `keep` are deleted only after the new one is committed,
so the last good checkpoint is never lost. The loop checks that a state is
finite before saving it.

Devices and processes: the loop saves one copy of the state, replicated on
its devices (`Strategy.unreplicate` in jaxnets/parallel.py), and restores into
that layout (`Strategy.restore_target`), so a run may resume under another
strategy or device count. With several processes every process calls `save`
and `restore` (orbax coordinates them): process 0 writes the metadata and
the position, each array is written once, and all processes must see the
same directory.
"""

from __future__ import annotations

import os

import orbax.checkpoint as ocp

from jaxnets.train.state import TrainState


class Checkpointer:
    """Saves and restores (TrainState, data position) under `directory`.

    Args:
      directory: where the step directories go (created if missing).
      keep: how many of the newest checkpoints to keep.
      async_save: write in a background thread; the device arrays are copied
        to host memory before `save` returns, so the caller may donate the
        state to the next step right away.
    """

    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, state: TrainState, position: dict) -> None:
        """Saves `state` and `position` as the checkpoint of `position['step']`."""
        step = int(position["step"])
        if step in self.manager.all_steps():
            return  # already saved (e.g. the end of a run that was complete)
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state.checkpoint_items()),
            position=ocp.args.JsonSave(dict(position))), force=True)

    def restore_position(self, step: int) -> dict:
        """Only the data position of checkpoint `step` (cheap: reads one JSON)."""
        restored = self.manager.restore(
            step, args=ocp.args.Composite(position=ocp.args.JsonRestore()))
        return dict(restored.position)

    def restore(self, step: int, abstract: TrainState) -> TrainState:
        """The state of checkpoint `step`, shaped like `abstract` (from abstract_state)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract.checkpoint_items())))
        return abstract.with_items(dict(restored.state))

    def unreadable(self, step: int, error: Exception, resume: str = "resume") -> str:
        """One line for checkpoint `step` failing to restore: damaged, or another model's.
        Re-raises errors of the device (out of memory, a lost peer) as they are."""
        if is_device_error(error):
            raise error
        return unreadable_message(self.directory, step, self.all_steps(), error, resume)

    def wait(self) -> None:
        """Blocks until every pending write is committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


RESTORE_ERRORS = (ValueError, KeyError, TypeError, OSError, RuntimeError)  # orbax, tensorstore


def is_device_error(error: Exception) -> bool:
    """Out of device memory or a lost peer while restoring: not the checkpoint's fault."""
    import jax  # pylint: disable=g-import-not-at-top
    return isinstance(error, jax.errors.JaxRuntimeError)


def unreadable_message(directory: str, step: int, steps: list[int], error: Exception,
                       resume: str = "resume") -> str:
    """Why checkpoint `step` in `directory` does not restore, and the two ways on."""
    first = (str(error).strip().splitlines() or [""])[0][:200]
    older = [s for s in steps if s < step]
    fix = (f"delete {os.path.join(directory, str(step))} to {resume} from step {max(older)}"
           if older else f"delete {os.path.dirname(directory)} to start over")
    return (f"checkpoint step {step} in {directory} cannot be restored "
            f"({type(error).__name__}: {first}): if it is damaged, {fix}; if the workdir "
            "holds another model's run, pass a new workdir (--workdir)")
