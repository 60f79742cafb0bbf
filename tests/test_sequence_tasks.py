"""The constructed sequence tasks: exact words, fixed splits, teacher-forcing layout."""

import numpy as np
import pytest

from jaxnets.data import sequence_tasks as st


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
