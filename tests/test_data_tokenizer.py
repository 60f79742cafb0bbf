"""Tokenizer and vocabulary: the one encoding shared by training, evaluation and prediction."""

import doctest
import json

import pytest

from jaxnets.data import tokenizer
from jaxnets.data.tokenizer import OOV, PAD, Vocabulary, build_vocabulary, tokenize


def test_tokenize_words_punctuation_and_non_ascii():
    assert tokenize("He's great -- isn't he?") == ["he's", "great", "-", "-", "isn't", "he", "?"]
    assert tokenize("Jirí's CLICHÉS<br />work") == ["jirí's", "clichés", "work"]
    assert tokenize("''Conan''") == ["'", "'", "conan", "'", "'"]
    assert tokenize("  \t\r\n ") == []


def test_vocabulary_reserves_pad_and_oov_and_ranks_by_frequency():
    vocab = build_vocabulary(["a good film.", "a bad film!", "a film"], max_size=100)
    assert vocab.tokens[:5] == ["<pad>", "<unk>", "a", "film", "!"]  # 3, 3, then ties a-z
    assert (PAD, OOV) == (0, 1)


def test_round_trip_and_oov():
    vocab = build_vocabulary(["the plot is good.", "the actors are bad."], max_size=100)
    ids = vocab.encode("The plot is BAD.")
    assert OOV not in ids and vocab.decode(ids) == "the plot is bad ."
    unknown = vocab.encode("the zebra is good")
    assert unknown[1] == OOV and vocab.decode(unknown) == "the <unk> is good"
    assert vocab.decode(unknown + [PAD, PAD]) == vocab.decode(unknown)  # padding drops out


def test_size_cap_counts_pad_and_oov():
    vocab = build_vocabulary(["a a a b b c"], max_size=4)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]
    assert vocab.encode("c") == [OOV]
    with pytest.raises(ValueError, match="no room"):
        build_vocabulary(["a"], max_size=2)


def test_min_count_leaves_rare_words_out():
    assert build_vocabulary(["a a b"], max_size=10, min_count=2).tokens == ["<pad>", "<unk>", "a"]


def test_save_load_round_trip(tmp_path):
    vocab = build_vocabulary(["ein schöner Film", "a film"], max_size=50)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab and loaded.encode("schöner film") == vocab.encode("schöner film")


def test_load_refuses_another_tokenizer(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"tokenizer": "bpe", "tokens": ["<pad>", "<unk>", "a"]}))
    with pytest.raises(ValueError, match=f"bpe.*{tokenizer.TOKENIZER}"):
        Vocabulary.load(path)


def test_vocabulary_validates_reserved_ids_and_duplicates():
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(["a", "<pad>"])
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary(["<pad>", "<unk>", "a", "a"])


def test_module_example_runs():
    assert doctest.testmod(tokenizer).failed == 0
