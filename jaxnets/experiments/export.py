r"""Export a finished run for a program without jaxnets: StableHLO, parameters, vocabulary.

  python -m jaxnets.experiments.export --workdir=runs/rnn_sentiment --out=exports/rnn_sentiment
  python exports/rnn_sentiment/serve.py exports/rnn_sentiment < reviews.txt   # jax + numpy only

Writes program.jax (jax.export's serialized StableHLO of the run's batch program),
params.npz, manifest.json and serve.py, a loader that imports only jax and numpy
(jaxnets/inference/export.py says what each holds). The batch size is symbolic where the
model allows it, else --batch_size. An earlier export in --out is replaced whole; a
directory holding anything else is refused, and a failed export leaves --out as it was.
"""

from __future__ import annotations

from absl import flags

from jaxnets import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The --workdir of a finished run.", required=True)
_OUT = flags.DEFINE_string("out", None, "The export's directory (new, empty, or an earlier "
                           "export).", required=True)
_PLATFORMS = flags.DEFINE_list("platforms", ["cpu"], "Platforms the program is lowered for: "
                               "cpu, cuda, rocm, tpu (several: one program for all).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "A fixed batch size (default: symbolic "
                                   "where the model allows it, else 256, or 32 for large "
                                   "images).", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Language models: the sampling "
                                  "temperature built into the program (> 0).")

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; use --flag=value")
    unknown = [p for p in _PLATFORMS.value if p not in PLATFORMS]
    if unknown or not _PLATFORMS.value:
        raise ValueError(f"--platforms={','.join(_PLATFORMS.value)}: give some of "
                         f"{', '.join(PLATFORMS)}")
    if not 0 < _TEMPERATURE.value < float("inf"):
        raise ValueError(f"--temperature={_TEMPERATURE.value}: give a finite number > 0")
    from jaxnets.inference import export, load_run  # pylint: disable=g-import-not-at-top
    export.check_out(_OUT.value)  # before the run loads
    run = load_run(_WORKDIR.value)
    described = export.write(run, _OUT.value, temperature=_TEMPERATURE.value,
                             platforms=_PLATFORMS.value, batch_size=_BATCH_SIZE.value)
    batch = described["batch_size"] or "any (symbolic)"
    print(f"exported {described['preset']} ({described['task']}) to {_OUT.value}: batch "
          f"size {batch}, platforms {','.join(described['platforms'])}; run it with "
          f"python {_OUT.value}/serve.py {_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
