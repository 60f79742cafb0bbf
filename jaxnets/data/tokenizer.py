"""Word tokenizer and vocabulary for the text datasets (pure Python, no TensorFlow).

The same `Vocabulary` object encodes the training data, the evaluation data and any text
given to a trained model later, so save it with the run (`vocab.save(workdir/"vocab.json")`)
and load it for evaluation and prediction (`Vocabulary.load(...)`).

    >>> vocab = build_vocabulary(["A good film.", "A bad film!"], max_size=10)
    >>> vocab.encode("a good, good film")  # "," was never seen: OOV
    [2, 7, 1, 7, 3]
    >>> vocab.decode([2, 7, 1, 7, 3, 0, 0])
    'a good <unk> good film'
"""

from __future__ import annotations

import collections
import json
import os
import re
from collections.abc import Iterable, Sequence

PAD, OOV = 0, 1  # token ids reserved in every vocabulary
PAD_TOKEN, OOV_TOKEN = "<pad>", "<unk>"
TOKENIZER = "words-v1"  # saved with the vocabulary; bump when `tokenize` changes

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # IMDB reviews are full of "<br />"
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")  # words (with inner apostrophes) or one symbol


def tokenize(text: str) -> list[str]:
    """Splits lower-cased text into words and single punctuation marks.

    "He's great -- isn't he?" -> ["he's", "great", "-", "-", "isn't", "he", "?"]
    Words keep non-ASCII letters ("clichés"); whitespace never survives, so a token
    never contains a space or a newline.
    """
    return _TOKEN.findall(_HTML_BREAK.sub(" ", text.lower()))


class Vocabulary:
    """Token <-> id map: id 0 is PAD, id 1 is OOV, then tokens by falling frequency."""

    def __init__(self, tokens: Sequence[str]):
        if list(tokens[:2]) != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError(
                f"a vocabulary must start with {PAD_TOKEN!r}, {OOV_TOKEN!r} (ids 0 and 1), "
                f"got {list(tokens[:2])}: build it with build_vocabulary()")
        if len(set(tokens)) != len(tokens):
            dupes = [t for t, c in collections.Counter(tokens).items() if c > 1]
            raise ValueError(f"vocabulary has duplicate tokens {dupes[:5]}")
        self.tokens = list(tokens)
        self._ids = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens: {self.tokens[2:7]}...)"

    def encode(self, text: str) -> list[int]:
        """Text -> token ids (no padding, no truncation); unknown words map to OOV (1)."""
        return [self._ids.get(token, OOV) for token in tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> space-joined tokens; PAD (0) is dropped, OOV shows as '<unk>'."""
        return " ".join(self.tokens[i] for i in map(int, ids) if i != PAD)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary as JSON (tokenizer version + tokens in id order)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tokenizer": TOKENIZER, "tokens": self.tokens}, f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Reads a vocabulary written by `save`; refuses one made by another tokenizer."""
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is damaged ({e}): the run's token ids are lost; "
                             "train again in a new workdir (--workdir)") from None
        if saved.get("tokenizer") != TOKENIZER:
            raise ValueError(
                f"{path} was written for tokenizer {saved.get('tokenizer')!r}, but this "
                f"jaxnets tokenizes with {TOKENIZER!r}: ids would not match; rebuild the "
                "vocabulary (retrain) or use the jaxnets version that wrote it")
        return cls(saved["tokens"])


def build_vocabulary(texts: Iterable[str], max_size: int, min_count: int = 1) -> Vocabulary:
    """Counts tokens in `texts` (the train split only) and keeps the most frequent.

    Args:
      texts: training texts.
      max_size: size cap including PAD and OOV, so at most `max_size - 2` real tokens.
      min_count: tokens seen fewer times are left out (they encode as OOV).
    Ties in frequency are broken alphabetically, so the same texts always give the same ids.
    """
    if max_size < 3:
        raise ValueError(f"vocab size {max_size} leaves no room for words next to PAD and OOV")
    counts = collections.Counter(token for text in texts for token in tokenize(text))
    ranked = sorted((t for t, c in counts.items() if c >= min_count),
                    key=lambda t: (-counts[t], t))
    return Vocabulary([PAD_TOKEN, OOV_TOKEN] + ranked[: max_size - 2])
