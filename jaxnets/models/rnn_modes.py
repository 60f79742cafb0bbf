"""The lecture's four ways to use an RNN ("Process Sequence").

  many-to-one    RNNClassifier      words -> sentiment            (final state)
  many-to-many   RNNLanguageModel   characters -> next character  (every step)
  many-to-many   RNNFrameClassifier video frames -> class per frame (synced: CNN per frame)
  one-to-many    RNNCaptioner       image -> words                (CNN gives h_0)
  seq-to-seq     Seq2Seq            words -> words                (encoder state -> decoder)

Token ids: 0 is padding; generating models start from `bos_id` and the
caller cuts the output after `eos_id`.

Every model takes `dtype` (e.g. jnp.bfloat16): the computation dtype of its layers,
with parameters kept in float32 and the scores returned in float32.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnets.models import cnn
from jaxnets.models.rnn import RNN, check_fields, length_mask


class RNNClassifier(nn.Module):
    """Many-to-one: embed -> RNN -> final hidden state -> class scores.

    Call with `tokens: <int32>[B, T]`, `lengths: <int32>[B]`; returns
    `logits: <float>[B, num_classes]`.
    """

    vocab_size: int
    num_classes: int = 2
    embed_dim: int = 64
    hidden_size: int = 128
    cell: str = "vanilla"
    dropout: float = 0.0         # on the final hidden state, in training
    embed_dropout: float = 0.0   # on the word vectors, in training
    dtype: Any = None

    def __post_init__(self):
        check_fields(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, tokens, lengths, *, train: bool = False):
        x = nn.Embed(self.vocab_size, self.embed_dim, dtype=self.dtype, name="embed")(tokens)
        x = nn.Dropout(self.embed_dropout, deterministic=not train)(x)
        rnn = RNN(self.hidden_size, self.cell, dtype=self.dtype, name="rnn")
        carry, _ = rnn(x, length_mask(lengths, tokens.shape[1]))
        h = nn.Dropout(self.dropout, deterministic=not train)(rnn.hidden(carry))
        return _scores(nn.Dense(self.num_classes, dtype=self.dtype, name="W_hy")(h))


class Decoder(nn.Module):
    """Tokens in, scores out: x_t = embed(token_t), y_t = W_hy h_t + b_y.

    `__call__` is teacher forcing (all inputs known); `decode` feeds each
    step's own prediction back in, greedily or by sampling.
    """

    vocab_size: int
    embed_dim: int
    hidden_size: int
    cell: str = "vanilla"
    dtype: Any = None

    def setup(self):
        self.embed = nn.Embed(self.vocab_size, self.embed_dim, dtype=self.dtype)
        self.rnn = RNN(self.hidden_size, self.cell, dtype=self.dtype)
        self.W_hy = self.param("W_hy", nn.initializers.lecun_normal(),
                               (self.hidden_size, self.vocab_size))
        self.b_y = self.param("b_y", nn.initializers.zeros, (self.vocab_size,))

    def __call__(self, carry, tokens, mask):
        """<int32>[B, T] inputs -> (carry, <float>[B, T, V] next-token scores)."""
        carry, hs = self.rnn(self.embed(tokens), mask, carry)
        return carry, _scores(hs @ self._cast(self.W_hy) + self._cast(self.b_y))

    def _cast(self, a):
        return a if self.dtype is None else a.astype(self.dtype)

    def zero_carry(self, batch_size: int):
        return self.rnn.zero_carry(batch_size, self.dtype or jnp.float32)

    def carry_from_hidden(self, h0):
        return self.rnn.carry_from_hidden(self._cast(h0))

    def decode(self, carry, first_token, length: int, rng=None, temperature: float = 0.0):
        """Generate `length` tokens after `first_token` (<int32>[B]).

        Greedy (argmax) when temperature is 0, else samples softmax(y/temperature)
        with `rng`. Returns <int32>[B, length].
        """
        # embed then W_xh, for every token at once: a step is then one row lookup
        table = self.rnn.step_cell.project(self.embed.embedding)     # (V, G*H)
        step, hidden = self.rnn.step_cell.recurrence(), self.rnn.step_cell.hidden
        W_hy, b_y = self._cast(self.W_hy), self._cast(self.b_y)
        keys = (jax.random.split(rng, length) if temperature > 0
                else jnp.zeros((length, 2), jnp.uint32))

        def body(state, key):
            carry, token = state
            carry, _ = step(carry, table[token])
            scores = hidden(carry) @ W_hy + b_y                      # (B, V)
            if temperature > 0:
                token = jax.random.categorical(key, scores / temperature)
            else:
                token = jnp.argmax(scores, axis=-1)
            return (carry, token.astype(jnp.int32)), token.astype(jnp.int32)

        _, tokens = jax.lax.scan(body, (carry, first_token.astype(jnp.int32)), keys)
        return tokens.T


class RNNLanguageModel(nn.Module):
    """Many-to-many: a score for the next token at every step.

    Call with `tokens: <int32>[B, T]` (starting with bos_id), `lengths`;
    returns `<float>[B, T, vocab_size]`.
    """

    vocab_size: int
    embed_dim: int = 32
    hidden_size: int = 256
    cell: str = "vanilla"
    bos_id: int = 1
    dtype: Any = None

    def __post_init__(self):
        check_fields(self)
        super().__post_init__()

    def setup(self):
        self.decoder = Decoder(self.vocab_size, self.embed_dim, self.hidden_size,
                               self.cell, dtype=self.dtype)

    def __call__(self, tokens, lengths, *, train: bool = False):
        carry = self.decoder.zero_carry(tokens.shape[0])
        _, scores = self.decoder(carry, tokens, length_mask(lengths, tokens.shape[1]))
        return scores

    def generate(self, rng, batch_size: int, length: int, temperature: float = 1.0):
        start = jnp.full((batch_size,), self.bos_id, jnp.int32)
        return self.decoder.decode(self.decoder.zero_carry(batch_size), start, length,
                                   rng=rng, temperature=temperature)


def _scores(logits):
    """Class or token scores in float32 whatever the computation dtype (a stable loss)."""
    return logits.astype(jnp.float32)


def _encoder_layers(features: int, channels: tuple[int, int] = (16, 32)) -> tuple:
    """A small LeNet-like CNN: two CONV+POOL stages of `channels` filters, then FC."""
    return (
        cnn.Conv("CONV1", channels[0], 5),
        cnn.MaxPool("POOL1", 2, stride=2),
        cnn.Conv("CONV2", channels[1], 3),
        cnn.MaxPool("POOL2", 2, stride=2),
        cnn.Dense("FC", features, relu=False),
    )


class RNNCaptioner(nn.Module):
    """One-to-many: a CNN encodes the image into h_0, the RNN emits words.

    Call with `image: <float>[B, H, W, C]`, `tokens: <int32>[B, T]` (bos_id
    then the caption, teacher forcing) and `lengths`; returns word scores
    `<float>[B, T, vocab_size]`. `generate` decodes greedily.
    """

    vocab_size: int
    input_shape: tuple = (28, 112, 1)
    embed_dim: int = 32
    hidden_size: int = 128
    cell: str = "vanilla"
    bos_id: int = 1
    dtype: Any = None

    def __post_init__(self):
        check_fields(self)
        super().__post_init__()

    def setup(self):
        self.encoder = cnn.SequentialCNN(_encoder_layers(self.hidden_size),
                                         tuple(self.input_shape), dtype=self.dtype)
        self.decoder = Decoder(self.vocab_size, self.embed_dim, self.hidden_size,
                               self.cell, dtype=self.dtype)

    def initial_carry(self, image, train=False):
        return self.decoder.carry_from_hidden(jnp.tanh(self.encoder(image, train=train)))

    def __call__(self, image, tokens, lengths, *, train: bool = False):
        carry = self.initial_carry(image, train)
        _, scores = self.decoder(carry, tokens, length_mask(lengths, tokens.shape[1]))
        return scores

    def generate(self, image, length: int):
        start = jnp.full((image.shape[0],), self.bos_id, jnp.int32)
        return self.decoder.decode(self.initial_carry(image), start, length)


class RNNFrameClassifier(nn.Module):
    """Many-to-many, synced: video classification on frame level.

    The captioner's CNN encodes every frame on its own into x_t; the RNN runs over the
    frames, h_t = tanh(W_hh h_{t-1} + W_xh x_t + b), and y_t = W_hy h_t scores frame t.
    With `recurrent=False` the same network forgets: h_t = tanh(W_xh x_t + b), a
    per-frame classifier (the baseline that shows what the recurrence remembers).

    Call with `image: <float>[B, T, H, W, C]` and `lengths: <int32>[B]` (frames per
    clip; later frames are padding); returns `<float>[B, T, num_classes]`, zero-state
    scores on padded frames.
    """

    num_classes: int = 11
    input_shape: tuple = (20, 28, 28, 1)   # (T, H, W, C): frames of H x W x C
    embed_dim: int = 64                    # the CNN's features per frame, x_t
    conv_channels: tuple = (8, 16)         # half the captioner's: the CNN runs B*T times
    hidden_size: int = 128
    cell: str = "vanilla"
    recurrent: bool = True
    dtype: Any = None

    def __post_init__(self):
        check_fields(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, image, lengths, *, train: bool = False):
        batch, frames = image.shape[:2]
        encoder = cnn.SequentialCNN(_encoder_layers(self.embed_dim, tuple(self.conv_channels)),
                                    tuple(self.input_shape[1:]), dtype=self.dtype,
                                    name="encoder")
        x = encoder(image.reshape(batch * frames, *image.shape[2:]), train=train)
        x = nn.relu(x).reshape(batch, frames, -1)                    # (B, T, embed_dim)
        mask = length_mask(lengths, frames)
        if self.recurrent:
            _, h = RNN(self.hidden_size, self.cell, dtype=self.dtype, name="rnn")(x, mask)
        else:
            h = jnp.tanh(nn.Dense(self.hidden_size, dtype=self.dtype, name="W_xh")(x))
            h = jnp.where(mask[..., None], h, jnp.zeros_like(h))     # as the RNN pads
        return _scores(nn.Dense(self.num_classes, dtype=self.dtype, name="W_hy")(h))


class Seq2Seq(nn.Module):
    """Sequence-to-sequence: an encoder RNN reads the source, its final state (all of
    it: h, and an LSTM's c) starts a decoder RNN that writes the target.

    Call with `source: <int32>[B, S]`, `source_lengths`, `tokens: <int32>[B, T]`
    (bos_id then the target, teacher forcing) and `lengths`; returns
    `<float>[B, T, target_vocab_size]`.
    """

    source_vocab_size: int
    target_vocab_size: int
    embed_dim: int = 32
    hidden_size: int = 128
    cell: str = "vanilla"
    bos_id: int = 1
    dtype: Any = None

    def __post_init__(self):
        check_fields(self)
        super().__post_init__()

    def setup(self):
        self.source_embed = nn.Embed(self.source_vocab_size, self.embed_dim, dtype=self.dtype)
        self.encoder = RNN(self.hidden_size, self.cell, dtype=self.dtype)
        self.decoder = Decoder(self.target_vocab_size, self.embed_dim,
                               self.hidden_size, self.cell, dtype=self.dtype)

    def encode(self, source, source_lengths):
        """The encoder's whole final state (h, and an LSTM's cell c too: the decoder is
        the same kind of cell), the decoder's initial state."""
        mask = length_mask(source_lengths, source.shape[1])
        carry, _ = self.encoder(self.source_embed(source), mask)
        return carry

    def __call__(self, source, source_lengths, tokens, lengths, *, train: bool = False):
        carry = self.encode(source, source_lengths)
        _, scores = self.decoder(carry, tokens, length_mask(lengths, tokens.shape[1]))
        return scores

    def generate(self, source, source_lengths, length: int):
        start = jnp.full((source.shape[0],), self.bos_id, jnp.int32)
        return self.decoder.decode(self.encode(source, source_lengths), start, length)
