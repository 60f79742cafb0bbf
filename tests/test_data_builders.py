"""The embedded TFDS builders, built from fixture files in the real source formats."""

import collections

import numpy as np
import pytest

import data_fixtures
from jaxnets.data import mnist5k, rt_sentences


def load_split(data_dir, name, split):
    import tensorflow_datasets as tfds
    return list(tfds.load(name, split=split, data_dir=data_dir).as_numpy_iterator())


@pytest.fixture(scope="module")
def data_dir():
    return data_fixtures.prepared_data_dir()


def test_parse_handles_crlf_no_final_newline_and_non_ascii():
    rows = rt_sentences.parse_ground_truth(data_fixtures.rt_ground_truth())
    assert len(rows) == data_fixtures.RT_LINES
    assert rows[2] == (3, 1.5, "Jirí Hubac's script is a gem -- ''Conan'' clichés word3.")
    assert not any(text.endswith("\r") for _, _, text in rows)


def test_parse_error_names_the_line():
    with pytest.raises(ValueError, match="line 2"):
        rt_sentences.parse_ground_truth(b"1\t0.5\tok\r\n2\tnot a number\tbad\r\n")


def test_rt_sentences_counts_labels_and_split(data_dir):
    rows = data_fixtures.rt_rows()
    kept = {i: (rating, text) for i, rating, text in rows if rating != 0}
    train = load_split(data_dir, "rt_sentences", "train")
    test = load_split(data_dir, "rt_sentences", "test")
    ids = {"train": {int(e["id"]) for e in train}, "test": {int(e["id"]) for e in test}}
    assert ids["train"].isdisjoint(ids["test"])
    assert ids["train"] | ids["test"] == set(kept)  # zero ratings dropped, nothing else
    assert len(kept) == data_fixtures.RT_LINES - data_fixtures.RT_LINES // data_fixtures.RT_ZERO_EVERY
    for example in train + test:
        rating, text = kept[int(example["id"])]
        assert example["label"] == int(rating > 0)
        assert example["text"].decode() == text and example["rating"] == np.float32(rating)
    for split, members in ids.items():
        assert all(rt_sentences.split_of(i) == split for i in members)


def test_rt_split_is_pinned_and_about_one_in_ten():
    share = np.mean([rt_sentences.split_of(i) == "test" for i in range(1, 10_606)])
    assert 0.09 < share < 0.11
    # Pinned: changing the hash rule would silently change every published result.
    assert [i for i in range(1, 40) if rt_sentences.split_of(i) == "test"] == [7, 9, 10, 33]


def test_mnist5k_counts_and_stratified_split(data_dir):
    images, labels = data_fixtures.digits()
    train = load_split(data_dir, "mnist5k", "train")
    test = load_split(data_dir, "mnist5k", "test")
    per_class = data_fixtures.DIGITS_PER_CLASS
    assert collections.Counter(int(e["label"]) for e in test) == {d: per_class // 5 for d in range(10)}
    assert collections.Counter(int(e["label"]) for e in train) == {
        d: per_class - per_class // 5 for d in range(10)}
    rows = [int(e["id"]) for e in train + test]
    assert sorted(rows) == list(range(len(labels)))
    for example in train[:20] + test[:20]:
        assert example["image"].shape == (28, 28, 1) and example["image"].dtype == np.uint8
        np.testing.assert_array_equal(example["image"][..., 0], images[example["id"]])
        assert example["label"] == labels[example["id"]]


def test_mnist5k_split_is_deterministic_and_stratified_on_the_real_layout():
    labels = np.repeat(np.arange(10), 500)  # mnist_5k.csv.gz: 500 per digit, sorted
    first, again = mnist5k.pick_test_rows(labels), mnist5k.pick_test_rows(labels)
    np.testing.assert_array_equal(first, again)
    assert first.sum() == 1000 and np.bincount(labels[first]).tolist() == [100] * 10


def test_mnist5k_rejects_a_wrong_table():
    import gzip
    with pytest.raises(ValueError, match="785 columns"):
        mnist5k.parse_csv(gzip.compress(b"1,2,3\n"))


def test_tfds_load_by_name_after_importing_the_builders(data_dir):
    import tensorflow_datasets as tfds

    from jaxnets.data import mnist5k, rt_sentences  # noqa: F401  importing registers them
    assert {"rt_sentences", "mnist5k"} <= set(tfds.list_builders(with_community_datasets=False))
    info = tfds.builder("mnist5k", data_dir=data_dir).info
    assert info.supervised_keys == ("image", "label") and info.features["label"].num_classes == 10
