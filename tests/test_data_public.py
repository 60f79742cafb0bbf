"""Public TFDS datasets: fast, clear failure offline; code paths through tfds mock_data."""

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from jaxnets import data
from jaxnets.data import catalog, public, tfds_io


def closed_port_url() -> str:
    """A local URL nothing listens on: connecting is refused at once, like a dead route."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def offline_env() -> dict[str, str]:
    """The environment of a process that cannot reach the internet: every HTTP(S) request
    goes to a proxy on a closed local port (urllib honours these variables)."""
    proxy = closed_port_url()
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update({k: proxy for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def offline(monkeypatch):
    """Points every public dataset's host probe at a closed local port."""
    url = closed_port_url()
    for name, spec in list(catalog.SPECS.items()):
        if not spec.embedded:
            monkeypatch.setitem(catalog.SPECS, name, dataclasses.replace(spec, probe_url=url))
    return url


@pytest.fixture
def online(monkeypatch):
    """Pretends the hosts answer; used with tfds.testing.mock_data, which fakes the data."""
    monkeypatch.setattr(public, "check_reachable", lambda *args, **kwargs: None)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, alternative", [("mnist", "mnist5k"), ("cifar10", "mnist5k"),
                                               ("glue/sst2", "rt_sentences")])
def test_offline_public_dataset_fails_fast_with_a_useful_message(offline, tmp_path, name,
                                                                 alternative):
    start = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError) as error:
        data.get_dataset(name, batch_size=8, data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10  # TFDS alone retries for ~200 s
    message = str(error.value)
    assert "\n" not in message and message.startswith(
        f"dataset {name!r} is not prepared in {tmp_path} and cannot be downloaded from here "
        "(127.0.0.1: Connection refused): prepare it where there is internet with "
        f"`python -m jaxnets.data --dataset={name} --data_dir=DIR` and copy "
        f"DIR/{name.split('/')[0]} into {tmp_path}")
    assert message.endswith(f", or use the embedded {alternative!r} (--dataset={alternative})")


def test_the_offline_answer_imports_no_tensorflow(tmp_path):
    """Whether a dataset is prepared, and the probe, come before TF's ~3 s import."""
    script = (
        "import sys\n"
        "from jaxnets.data import public\n"
        "try:\n"
        f"    public.prepared_builder('mnist', {str(tmp_path)!r}, probe_timeout=5)\n"
        "except public.DatasetUnavailableError:\n"
        "    print('tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=offline_env(), timeout=60)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


@pytest.mark.timeout(30)
def test_probe_gives_up_after_its_timeout_on_a_silent_host(tmp_path):
    """A host that accepts the connection but never answers (a black hole) costs `timeout`."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    spec = dataclasses.replace(catalog.SPECS["mnist"],
                               probe_url=f"http://127.0.0.1:{silent.getsockname()[1]}/")
    start = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError, match="timed out"):
        public.check_reachable(spec, str(tmp_path), timeout=0.5)
    assert time.perf_counter() - start < 5
    silent.close()


def test_any_http_answer_counts_as_online(tmp_path):
    """A 404 still proves a route to the host."""
    import http.server

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    spec = dataclasses.replace(catalog.SPECS["mnist"],
                               probe_url=f"http://127.0.0.1:{server.server_port}/")
    public.check_reachable(spec, str(tmp_path), timeout=5)
    server.server_close()


def test_every_public_dataset_has_a_probe_and_an_embedded_alternative():
    for spec in catalog.SPECS.values():
        if not spec.embedded:
            assert spec.probe_url.startswith("http")
            assert catalog.SPECS[spec.alternative].embedded
            assert catalog.SPECS[spec.alternative].kind == spec.kind


def test_prepared_public_dataset_loads_without_the_network(monkeypatch):
    import tensorflow_datasets as tfds

    def no_network(*args, **kwargs):
        raise AssertionError("probed the network for a prepared dataset")

    monkeypatch.setattr(public, "check_reachable", no_network)
    with tfds.testing.mock_data(num_examples=10):
        monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
        ds = data.get_dataset("fashion_mnist", batch_size=5)
    assert ds.num_train == 10 and ds.steps_per_epoch == 2


def test_mock_mnist_padded_for_lenet(online):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        ds = data.get_dataset("mnist", batch_size=8, eval_batch_size=6, image_shape=(32, 32, 1))
        train = list(ds.train_epoch(0))
        evaluation = list(ds.eval_batches())
    assert ds.input_shape == (32, 32, 1) and len(train) == ds.steps_per_epoch == 2
    assert train[0]["image"].shape == (8, 32, 32, 1) and train[0]["label"].dtype == np.int32
    assert len(evaluation) == 4 and sum(b["mask"].sum() for b in evaluation) == 20


def test_mock_cifar10_with_flip_augmentation(online):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        ds = data.get_dataset("cifar10", batch_size=4, augment=True)
        batch = next(ds.train_epoch(0))
    assert batch["image"].shape == (4, 32, 32, 3) and np.isfinite(batch["image"]).all()


def test_mock_imagenette_needs_and_gets_a_size(online):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        with pytest.raises(ValueError, match="varying sizes.*image_shape"):
            data.get_dataset("imagenette", batch_size=2)
        ds = data.get_dataset("imagenette/160px-v2", batch_size=2, image_shape=(64, 48, 3))
        batch = next(ds.eval_batches())
    assert batch["image"].shape == (2, 64, 48, 3)


@pytest.mark.parametrize("name, eval_split", [("imdb_reviews", "test"),
                                              ("glue/sst2", "validation")])
def test_mock_text_datasets(online, monkeypatch, name, eval_split):
    import tensorflow_datasets as tfds

    read_splits = []
    real_read = tfds_io.read
    monkeypatch.setattr(tfds_io, "read", lambda builder, split, *a: (
        read_splits.append(split), real_read(builder, split, *a))[1])
    with tfds.testing.mock_data(num_examples=16):
        ds = data.get_dataset(name, batch_size=4, max_length=12, vocab_size=50)
        batch = next(ds.train_epoch(0))
        texts = ds.eval_texts()
    assert ds.kind == "text" and ds.input_shape == (12,) and len(ds.vocab) <= 50
    assert batch["tokens"].shape == (4, 12) and len(texts) == ds.num_eval == 16
    assert eval_split in read_splits and "train" in read_splits
