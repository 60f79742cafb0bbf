r"""Train and evaluate one experiment.

    python -m jaxnets.experiments.run --model=lenet_mnist
    python -m jaxnets.experiments.run --config=jaxnets/configs/rnn_sentiment.py \
        --config.num_epochs=2 --config.model_kwargs.cell=lstm
    python -m jaxnets.experiments.run --model=rnn_sentiment --epochs=2 --workdir=/tmp/rnn
    python -m jaxnets.experiments.run --model=my_pkg.models:make_net --dataset=mnist5k
    python -m jaxnets.experiments.run --model=lenet_mnist --config.smoke=True
    python -m jaxnets.experiments.run --model=list
    python -m jaxnets.experiments.run --model=alexnet --num_devices=4 --parallel=sharding
    python -m jaxnets.experiments.run --model=rnn_sentiment --host_devices=2   # both CPU cores
    python -m jaxnets.experiments.run --model=alexnet --coordinator_address=host0:1234 \
        --num_processes=2 --process_id=0      # and --process_id=1 on the second host

A config is a file whose get_config() gives it (the presets: jaxnets/configs/);
--model=NAME is short for --config=jaxnets/configs/NAME.py, and every field can be
overridden with --config.<field>=<value> (see jaxnets/train/config.py). The common
flags (--epochs, --batch_size, ...) are short for their --config.<field>; of two for
one field, the later wins (jaxnets/configs/command_line.py). The default workdir is
runs/<preset> (runs/<preset>_smoke for --config.smoke=True). Running the same command
again on the same --workdir resumes from its newest checkpoint. Bad input is one line
on stderr and exit status 2. TensorFlow (tf.data only) is imported by jaxnets.data
alone, with its GPUs hidden from it.

The terminal shows jaxnets' own lines and the libraries' errors only;
JAXNETS_VERBOSE=1 in the environment (or absl's --verbosity=0) brings back the
libraries' own logs: TensorFlow's start-up lines, TFDS's and orbax's warnings (with
--verbosity=0 their INFO too), TFDS's progress bars and messages.

Several processes (jaxnets/distributed.py): under SLURM or Open MPI with more than
one task, jax.distributed finds its peers by itself; elsewhere give the three
--coordinator_address/--num_processes/--process_id flags to every process, or
try it on one machine with `python -m jaxnets.experiments.launch`.
"""

from __future__ import annotations

import sys

from absl import flags

from jaxnets import cli, configs
from jaxnets.configs import command_line
from jaxnets.train.config import ConfigError

command_line.define_flags()  # --model, --config and the common flags (--epochs, ...)
flags.adopt_module_key_flags(command_line)  # listed by --help
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Logs and checkpoints (default runs/<preset>; runs/<preset>_smoke for "
    "--config.smoke=True).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-process: host:port of process 0, the same for all.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: how many.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this one, 0..N-1.")
_DISTRIBUTED_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", 120, "Multi-process: seconds to wait for every peer to connect.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", "auto", "Directory of JAX's persistent compilation cache, so a "
    "second run of a model skips compiling it; auto = ~/.cache/jaxnets/xla/<this CPU>, "
    "off = none.")


def main(argv) -> int:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}; "
                          "flags look like --name=value")
    if flags.FLAGS.model == "list":
        print("\n".join(configs.describe()))
        return 0
    config = command_line.config_from_flags()
    workdir = _WORKDIR.value or configs.default_workdir(config)

    from jaxnets import runtime_options
    runtime_options.tune_host()  # before JAX starts: malloc reuse, programs on this thread
    runtime_options.split_host(config.host_devices)  # before JAX starts too
    from jaxnets import distributed  # before anything else uses JAX
    distributed.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                       _PROCESS_ID.value, timeout_s=_DISTRIBUTED_TIMEOUT.value)
    from jaxnets.train.placement import make_strategy
    make_strategy(config.parallel, config.num_devices, config.steps_per_call
                  ).check_batch(config.batch_size)  # a usage error before the data loads
    runtime_options.use_compilation_cache(_COMPILATION_CACHE.value)
    import jax
    from jaxnets.data import DatasetUnavailableError
    from jaxnets.train import NonFiniteError, train_and_evaluate
    try:
        result = train_and_evaluate(config, workdir)
    except DatasetUnavailableError as e:  # a dataset to fetch elsewhere: one line, exit 2
        cli.fail(str(e))
    except NonFiniteError as e:  # not a usage error: status 1
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ConfigError:
        raise  # a usage error: one line, exit 2
    except jax.errors.JaxRuntimeError as e:
        if distributed.lost_peer(e) is None:
            raise
        print(f"error: process {jax.process_index()}: {distributed.lost_peer(e)}",
              file=sys.stderr)
        return 1
    except ValueError as e:  # a bug, not a usage error: keep the traceback
        raise RuntimeError(f"training failed: {e}") from e
    if not config.progress and distributed.is_primary():
        print(result.summary_line)
    return 0


def _parse_flags(argv: list[str]) -> list[str]:
    sys.argv = command_line.expand_argv(argv)  # config_flags reads its overrides there
    return command_line.parse_flags(sys.argv)


if __name__ == "__main__":
    cli.run(main, flags_parser=_parse_flags)
