"""The constructed sequence tasks: exact words, fixed splits, teacher-forcing layout."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest

import data_fixtures
from jaxnets.data import sequence_tasks as st
from jaxnets.data import split_cache


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (105, "one hundred five"),
    (1234, "one thousand two hundred thirty four"), (7070, "seven thousand seventy"),
    (9999, "nine thousand nine hundred ninety nine"), (2000, "two thousand"),
])
def test_number_to_words(n, words):
    assert " ".join(st.number_to_words(n)) == words


def test_number_words_split_is_fixed_and_disjoint():
    train, test = st.number_words()
    again_train, again_test = st.number_words()
    assert len(train["number"]) == 9000 and len(test["number"]) == 1000
    assert not set(train["number"]) & set(test["number"])
    np.testing.assert_array_equal(test["number"], again_test["number"])
    i = int(np.where(test["number"] == test["number"][5])[0][0])
    n = int(test["number"][i])
    assert st.NUMBER_SOURCE.decode(test["source"][i], sep="") == str(n)
    assert st.NUMBER_TARGET.decode(test["targets"][i]) == " ".join(st.number_to_words(n))


def test_decoder_arrays_layout():
    arrays = st.decoder_arrays([[5, 6, 7], [8]], max_length=5)
    np.testing.assert_array_equal(arrays["tokens"], [[1, 5, 6, 7, 0], [1, 8, 0, 0, 0]])
    np.testing.assert_array_equal(arrays["targets"], [[5, 6, 7, 2, 0], [8, 2, 0, 0, 0]])
    np.testing.assert_array_equal(arrays["lengths"], [4, 2])
    np.testing.assert_array_equal(arrays["target_mask"].sum(1), arrays["lengths"])


def test_digit_captions_show_the_digits_they_name():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(10)
    data = st.digit_captions(images, labels, count=20, seed=1)
    assert data["image"].shape == (20, 28, 112, 1)
    for strip, targets in zip(data["image"], data["targets"]):
        words = st.CAPTION_WORDS.decode(targets).split()
        assert 1 <= len(words) <= 4
        for j, word in enumerate(words):  # digit j of the strip is the image labelled word
            digit = st.DIGIT_WORDS.index(word)
            np.testing.assert_allclose(strip[:, 28 * j:28 * (j + 1)], images[digit] / 255.0)
        assert not strip[:, 28 * len(words):].any()  # blank after the last digit


def test_char_lm_round_trip_and_unknown_characters():
    symbols = st.char_symbols(["abc ab", "ba!"])
    arrays = st.char_lm(["cab!", "a?b"], symbols, max_length=8)
    assert symbols.decode(arrays["targets"][0], sep="") == "cab!"
    assert symbols.decode(arrays["targets"][1], sep="") == "ab"  # '?' unseen in training


def test_symbols_save_load(tmp_path):
    st.NUMBER_TARGET.save(tmp_path / "v.json")
    assert st.Symbols.load(tmp_path / "v.json") == st.NUMBER_TARGET
    with pytest.raises(ValueError, match="not in this task's vocabulary"):
        st.NUMBER_SOURCE.ids("12a")


def test_tasks_load_by_name_from_the_embedded_datasets():
    import data_fixtures
    from jaxnets import data
    data_dir = data_fixtures.prepared_data_dir()
    captions = data.get_dataset("digit_captions", batch_size=8, data_dir=data_dir)
    batch = next(captions.train_epoch(0))
    assert batch["image"].shape == (8, 28, 112, 1) and captions.kind == "sequence"
    assert len(captions.vocab) == st.CAPTION_WORDS.size
    chars = data.get_dataset("rt_chars", batch_size=8, data_dir=data_dir, max_length=64)
    batch = next(chars.train_epoch(0))
    assert batch["tokens"].shape == (8, 64) and (batch["tokens"][:, 0] == st.BOS).all()
    numbers = data.get_dataset("number_words", batch_size=8, eval_batch_size=300)
    assert (numbers.num_train, numbers.num_eval, numbers.eval_steps) == (9000, 1000, 4)
    assert sum(b["mask"].sum() for b in numbers.eval_batches()) == 1000


def test_tfds_translation_code_path_with_mock_data(monkeypatch):
    import tensorflow_datasets as tfds
    from jaxnets import data
    from jaxnets.data import public
    monkeypatch.setattr(public, "check_reachable", lambda *args, **kwargs: None)
    with tfds.testing.mock_data(num_examples=12):
        ds = data.get_dataset("ted_hrlr_translate/pt_to_en", batch_size=4, max_length=10)
    batch = next(ds.train_epoch(0))
    assert batch["source"].shape == (4, 10) and batch["tokens"].shape == (4, 11)
    assert (batch["tokens"][:, 0] == st.BOS).all() and ds.source_vocab.unit == "words"
    assert ds.num_train == 12 and sum(b["mask"].sum() for b in ds.eval_batches()) == 12


def test_offline_translation_dataset_fails_fast_naming_the_alternative(monkeypatch, tmp_path):
    from jaxnets import data
    from jaxnets.data import public

    def unreachable(spec, data_dir, timeout):
        raise data.DatasetUnavailableError(public.offline_message(spec, data_dir, "refused"))

    monkeypatch.setattr(public, "check_reachable", unreachable)
    with pytest.raises(data.DatasetUnavailableError, match="--dataset=number_words"):
        data.get_dataset("ted_hrlr_translate/pt_to_en", batch_size=4, data_dir=str(tmp_path))


def test_word_symbols_map_unknown_words_to_unk():
    symbols = st.word_symbols(["the film was good", "the plot"], max_size=20)
    ids = symbols.encode("The film was splendid")
    assert symbols.decode(ids) == "the film was <unk>"


# -- whole TFDS splits kept as numpy (split_cache.py) ----------------------------------------


def _prepared(root, name="toy", versions=("1.0.0",)):
    for version in versions:
        (root / name / version).mkdir(parents=True)
        (root / name / version / "dataset_info.json").write_text("{}")
    return str(root)


def test_a_kept_split_is_read_back_until_the_dataset_is_prepared_again(tmp_path):
    root = _prepared(tmp_path)
    arrays = {"text": np.array([b"good film", b"bad"], object), "label": np.array([1, 0])}
    reads = []

    def read():
        reads.append(1)
        return arrays
    first = split_cache.cached("toy", "train", root, read)
    again = split_cache.cached("toy", "train", root, read)
    assert len(reads) == 1 and again["text"].tolist() == [b"good film", b"bad"]
    np.testing.assert_array_equal(again["label"], first["label"])
    info = tmp_path / "toy" / "1.0.0" / "dataset_info.json"
    later = os.path.getmtime(split_cache.cache_path("toy", "train", root)) + 10
    os.utime(info, (later, later))  # prepared again after the file was kept
    split_cache.cached("toy", "train", root, read)
    assert len(reads) == 2


def test_no_split_is_kept_where_it_could_be_wrong_or_cannot_be_written(tmp_path):
    two = _prepared(tmp_path / "two", versions=("1.0.0", "1.1.0"))
    assert split_cache.cache_path("toy", "train", two) is None  # which version is meant?
    configs = _prepared(tmp_path / "configs", versions=("plain/1.0.0",))
    assert split_cache.cache_path("toy", "train", configs).endswith(
        os.path.join("toy", "plain", "1.0.0", "jaxnets-train.npz"))  # the default config
    _prepared(tmp_path / "configs", versions=("bytes/1.0.0",))
    assert split_cache.cache_path("toy", "train", configs) is None  # which config?
    one = _prepared(tmp_path / "one")
    mixed = {"text": np.array([b"bytes", "a str"], object)}  # only bytes are packed
    assert split_cache.cached("toy", "train", one, lambda: mixed) is mixed
    assert not os.path.exists(split_cache.cache_path("toy", "train", one))
    blocked = split_cache.cache_path("toy", "test", one)
    os.mkdir(blocked)  # the rename fails (as in a read-only directory, even for root)
    plain = {"label": np.arange(3)}
    assert split_cache.cached("toy", "test", one, lambda: plain) is plain  # no error
    assert not [f for f in os.listdir(os.path.dirname(blocked)) if f.endswith(".tmp")]


def test_texts_are_kept_exactly_and_packed_not_padded(tmp_path):
    root = _prepared(tmp_path)
    texts = np.empty(3, object)
    texts[:] = [b"ends in NUL\x00", b"", b"x" * 5000]  # fixed width: NUL lost, 15 kB
    split_cache.cached("toy", "train", root, lambda: {"text": texts})
    path = split_cache.cache_path("toy", "train", root)
    again = split_cache.cached("toy", "train", root, lambda: 1 / 0)
    assert again["text"].dtype == object and again["text"].tolist() == texts.tolist()
    assert os.path.getsize(path) < 6000


def test_a_split_is_kept_only_where_its_builder_reads(tmp_path, monkeypatch):
    root = _prepared(tmp_path / "data")
    reads = []
    monkeypatch.setattr(split_cache, "read_split",
                        lambda builder, split: reads.append(split) or {"label": np.arange(2)})
    elsewhere = types.SimpleNamespace(data_dir=tmp_path / "mock" / "toy" / "1.0.0")
    for _ in range(2):  # e.g. a tfds.testing.mock_data builder: read every time, not kept
        split_cache.whole_split("toy", "train", root, elsewhere)
    assert reads == ["train", "train"]
    assert not os.path.exists(split_cache.cache_path("toy", "train", root))
    here = types.SimpleNamespace(data_dir=tmp_path / "data" / "toy" / "1.0.0")
    for _ in range(2):
        split_cache.whole_split("toy", "train", root, here)
    assert reads == ["train"] * 3 and os.path.exists(split_cache.cache_path("toy", "train", root))


def test_an_older_file_of_fixed_width_texts_still_reads_as_bytes_objects(tmp_path):
    root = _prepared(tmp_path)
    np.savez(split_cache.cache_path("toy", "train", root), text=np.array([b"old", b"file"]))
    texts = split_cache.cached("toy", "train", root, lambda: 1 / 0)["text"]
    assert texts.dtype == object and texts.tolist() == [b"old", b"file"]


def test_a_task_built_from_tfds_loads_again_without_tensorflow(tmp_path):
    data_dir = data_fixtures.prepared_data_dir()
    code = ("import hashlib, sys\nfrom jaxnets.data import sequence_tasks as st\n"
            "d = st.load('rt_chars', batch_size=8, data_dir=sys.argv[1])\n"
            "digest = hashlib.sha256(d.train['tokens'].tobytes() + d.eval['targets'].tobytes())\n"
            "print('tensorflow' in sys.modules, digest.hexdigest())")
    runs = [subprocess.run([sys.executable, "-c", code, data_dir], capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert runs[1][0] == "False" and runs[0][1] == runs[1][1]


@pytest.mark.parametrize("name, option, message", [
    ("number_words", {"max_length": 5}, "max_length does not apply to number_words"),
    ("digit_captions", {"vocab_size": 100}, "vocab_size does not apply to digit_captions"),
    ("number_words", {"image_shape": (8, 8, 1)}, "image_shape and augment do not apply"),
])
def test_an_option_a_task_cannot_take_is_refused_not_ignored(name, option, message):
    from jaxnets import data
    with pytest.raises(ValueError, match=message):
        data.get_dataset(name, batch_size=8, **option)
