"""The run command's config: a config file, and every override applied once, by
`ml_collections.config_flags`.

    --config=jaxnets/configs/rnn_sentiment.py --config.num_epochs=2 --config.seed=1
    --model=rnn_sentiment --epochs=2 --seed=1        # the same, in short forms

The short forms are spelled out on the command line before absl parses it
(`expand_argv`): `--model=NAME` is `--config=<NAME's file>` (a
'package.module:factory' is `--config=.../custom.py:package.module:factory`; no
--model and no --config: the default preset), and each common flag (`--epochs`,
`--batch_size`, ... `COMMON_FLAGS`) is followed, in its place, by the
`--config.<field>=<value>` it stands for.

Precedence, the one rule: the file's values < its smoke_overrides (with
--config.smoke=True) < the command line's overrides, flags and --config.<field> alike;
of two for one field, the later on the command line wins. `--epochs` without
`--steps` also sets num_steps=0 (it asks for epochs, even from a preset counted in steps).
"""

from __future__ import annotations

import os
import re
import traceback

import ml_collections
from absl import flags
from ml_collections import config_flags

from jaxnets import configs
from jaxnets.train.config import OPTIMIZERS, PARALLEL, ConfigError

COMMON_FLAGS = {  # flag -> the config field it is short for
    "dataset": "dataset", "epochs": "num_epochs", "steps": "num_steps",
    "batch_size": "batch_size", "learning_rate": "learning_rate", "optimizer": "optimizer",
    "seed": "seed", "parallel": "parallel", "num_devices": "num_devices",
    "host_devices": "host_devices",
}
_TAKE_VALUES = ("model", "config", *COMMON_FLAGS)  # flags whose value expand_argv reads
_FLAG = re.compile(r"-{1,2}([A-Za-z_][\w.]*)(?:=(.*))?", re.DOTALL)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS, sys_argv=None) -> None:
    """--model, --config and the common flags (config_flags reads the overrides from
    `sys_argv`, by default sys.argv when it parses)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string(
        "model", configs.DEFAULT, "A preset (--model=list shows them), short for "
        "--config=jaxnets/configs/<preset>.py; or package.module:factory for your own "
        "model (a flax module or an (init, apply) pair).", **fv)
    config_flags.DEFINE_config_file(
        "config", None, "A config file whose get_config() gives the config, e.g. "
        "jaxnets/configs/rnn_sentiment.py; --config.<field>=<value> overrides any field.",
        lock_config=False, accept_new_attributes=True, sys_argv=sys_argv, **fv)
    flags.DEFINE_string("dataset", None, "A jaxnets.data dataset, e.g. mnist5k, mnist.", **fv)
    flags.DEFINE_integer("epochs", None, "Train for this many epochs.", lower_bound=1, **fv)
    flags.DEFINE_integer("steps", None, "Train for this many steps (wins over epochs).",
                         lower_bound=1, **fv)
    flags.DEFINE_integer("batch_size", None, "Training batch size.", **fv)
    flags.DEFINE_float("learning_rate", None, "Peak learning rate.", **fv)
    flags.DEFINE_enum("optimizer", None, list(OPTIMIZERS), "The optimizer.", **fv)
    flags.DEFINE_integer("seed", None, "Seed of initialisation, dropout and shuffling.", **fv)
    flags.DEFINE_integer(
        "num_devices", None, "Devices per process (default: all local devices); the batch "
        "is split evenly over them.", **fv)
    flags.DEFINE_integer(
        "host_devices", None, "On a CPU: split it into this many devices (default: one), "
        "so the run trains data-parallel on its cores; faster for long sequences "
        "(jaxnets/runtime_options.py).", **fv)
    flags.DEFINE_enum(
        "parallel", None, list(PARALLEL), "Data parallelism: auto (default: pmap on several "
        "devices, a plain jax.jit on one), pmap, or sharding (jax.jit with a Mesh and "
        "NamedSharding).", **fv)


def _args(argv: list[str]) -> list[tuple[str | None, str | None, list[str]]]:
    """argv as (flag name, value, its tokens); a value given as the next token too."""
    args, i = [], 0
    while i < len(argv):
        match = _FLAG.fullmatch(argv[i])
        name, value = match.groups() if match else (None, None)
        tokens = argv[i:i + 1]
        if name in _TAKE_VALUES and value is None and i + 1 < len(argv):
            value, tokens = argv[i + 1], argv[i:i + 2]  # --epochs 3
        args.append((name, value, tokens))
        i += len(tokens)
    return args


def _config_tokens(args) -> list[str]:
    """The --config tokens of the command line, or those --model (or its default) means."""
    model = [value for name, value, _ in args if name == "model"]
    given = [(value, tokens) for name, value, tokens in args if name == "config"]
    if model and given:
        raise ConfigError(f"--model={model[-1]} and --config={given[-1][0]}: give one of "
                          "them (--model=NAME is short for a --config file)")
    if not given:
        return [f"--config={configs.config_arg(model[-1] if model else configs.DEFAULT)}"]
    file, tokens = given[-1]
    if not os.path.isfile(file.split(":")[0]):
        raise ConfigError(f"--config={file}: no such file; give a config file such as "
                          "jaxnets/configs/rnn_sentiment.py, or --model=NAME (--model=list)")
    return tokens


def expand_argv(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """`argv` with its short forms spelled out (see the module's docstring); the config
    file comes first, so each --config.<field> finds it loaded. --model=list: unchanged."""
    argv = flag_values.read_flags_from_files(argv, force_gnu=False)
    end = argv.index("--") if "--" in argv else len(argv)
    args = _args(argv[1:end])
    if any(name == "model" and value == "list" for name, value, _ in args):
        return argv
    expanded = [argv[0], *_config_tokens(args)]
    given = {name for name, _, _ in args}
    for name, value, tokens in args:
        if name == "config":
            continue
        expanded += tokens
        if name in COMMON_FLAGS:
            expanded.append(f"--config.{COMMON_FLAGS[name]}={value}")
        if name == "epochs" and "steps" not in given:
            expanded.append("--config.num_steps=0")
    return expanded + argv[end:]


def parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """`flag_values(argv)` on an expanded argv; an override config_flags cannot place (a
    path through a plain value or an unknown group) is a ConfigError naming it."""
    try:
        return flag_values(argv)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        raise ConfigError(_file_problem(e, argv) or _unplaceable(argv, flag_values) or
                          f"a --config override cannot be applied: {e!r}") from None
    except Exception as e:  # pylint: disable=broad-except  # the config file's own code
        problem = _file_problem(e, argv)
        if problem is None:
            raise
        raise ConfigError(problem) from None


def _file_problem(error: Exception, argv: list[str]) -> str | None:
    """`error` in one line with the config file's line, if the config file raised it."""
    files = [value for name, value, _ in _args(argv[1:]) if name == "config"]
    if not files:
        return None
    file = os.path.abspath(files[-1].split(":")[0])
    if isinstance(error, SyntaxError) and error.filename and \
            os.path.abspath(error.filename) == file:
        line = error.lineno
    else:
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if os.path.abspath(f.filename) == file]
        if not frames:
            return None
        line = frames[-1].lineno
    message = (error.msg if isinstance(error, SyntaxError) else str(error)).splitlines()
    return (f"--config={files[-1]}: {type(error).__name__} at line {line}"
            f"{': ' + message[0] if message else ''}; fix the config file")


def _unplaceable(argv, flag_values) -> str | None:
    """Which --config.<path> names no place in the config, and the fields there."""
    args = _args(argv[1:])
    config_args = [value for name, value, _ in args if name == "config"]
    if not config_args:
        return None
    config = flag_values["config"].parser.parse(config_args[-1])  # as the file gives it
    for name, _, _ in args:
        if name and name.startswith("config."):
            problem = _path_problem(name[len("config."):], config)
            if problem:
                return problem
    return None


def _path_problem(path: str, config) -> str | None:
    keys, node = path.split("."), config
    for depth, key in enumerate(keys[:-1]):
        where = ".".join(keys[:depth + 1])
        if key not in node:
            return (f"unknown config field {where!r} in --config.{path}; valid fields there: "
                    f"{', '.join(sorted(node)) or 'none'}")
        node = node[key]
        if not isinstance(node, ml_collections.ConfigDict):
            return (f"--config.{path}: {where} is a single value ({node!r}); set it with "
                    f"--config.{where}=...")
    return None


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS):
    """The config the parsed flags give, validated once (`configs.finish`)."""
    config_flag = flag_values["config"]
    return configs.finish(config_flag.value, config_flags.get_override_values(config_flag))


def parse(argv: list[str]) -> ml_collections.ConfigDict:
    """The config `python -m jaxnets.experiments.run <argv[1:]>` would train, on flags
    of its own (for tests and scripts; no JAX)."""
    argv = expand_argv(argv)
    flag_values = flags.FlagValues()
    define_flags(flag_values, sys_argv=argv)
    parse_flags(argv, flag_values)
    return config_from_flags(flag_values)
