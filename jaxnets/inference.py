"""Using a trained model: load a finished run, decode sequences, predict.

A run's workdir holds everything needed: `config.json` (what was trained),
`model.json` (the model factory and the sizes it was built with),
`vocab.json` (the token ids) and `checkpoints/` (the parameters).

    run = load_run("runs/rnn_translate")
    run.translate("1234")          # 'one thousand two hundred thirty four'
    run.classify("a gorgeous, witty film")  # ('positive', 0.761) for runs/rnn_sentiment

Decoding is greedy (argmax at every step) for captioning and translation,
and sampled for the language model. No TensorFlow is needed here.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.data import sequence_tasks
from jaxnets.data.sequence_tasks import EOS

SENTIMENT_NAMES = ("negative", "positive")


# -- decoding (a Flax module with a `generate` method) ------------------------

def generation_inputs(batch) -> tuple:
    """The positional `generate` inputs of a decoder batch (before the length)."""
    if "source" in batch:
        return (batch["source"], batch["source_lengths"])
    if "image" in batch:
        return (batch["image"],)
    raise ValueError(f"cannot generate for a batch with keys {sorted(batch)}: "
                     "expected 'source' (translation) or 'image' (captioning)")


@partial(jax.jit, static_argnums=(0, 3))
def _generate(module, params, inputs, length):
    return module.apply({"params": params}, *inputs, length, method=module.generate)


def generate(module, params, batch, length: int) -> np.ndarray:
    """Greedy output ids <int32>[B, length] for a batch of sources or images."""
    return np.asarray(_generate(module, params, generation_inputs(batch), length))


def exact_matches(generated: np.ndarray, targets: np.ndarray, target_mask: np.ndarray):
    """<bool>[B]: the generated ids equal the targets up to and including EOS."""
    same = (generated == targets) | (target_mask == 0)
    return same.all(axis=1)


def exact_match(module, params, batches, combine=lambda counts: counts) -> dict:
    """Exact-match accuracy of greedy decoding over (padded) eval batches; `combine` maps
    the (correct, total) counts first, e.g. to their sums over processes."""
    counts = np.zeros(2, np.int64)
    for batch in batches:
        length = batch["targets"].shape[1]
        hits = exact_matches(generate(module, params, batch, length), batch["targets"],
                             batch["target_mask"])
        real = batch["mask"] > 0
        counts += (int(hits[real].sum()), int(real.sum()))
    correct, total = (int(c) for c in combine(counts))
    return {"exact_match": correct / max(total, 1), "sequences": total}


def sample_text(module, params, symbols, *, count: int = 3, length: int = 200,
                temperature: float = 0.8, seed: int = 0) -> list[str]:
    """Texts sampled from a character language model, each cut at its first EOS."""
    ids = module.apply({"params": params}, jax.random.key(seed), count, length, temperature,
                       method=module.generate)
    return [symbols.decode(row, sep="") for row in np.asarray(ids)]


# -- finished runs ------------------------------------------------------------

@dataclasses.dataclass
class Run:
    """A trained model loaded from its workdir."""

    workdir: str
    config: dict
    module: object             # the Flax module
    params: dict
    vocab: object              # Vocabulary (text), Symbols (sequence tasks) or None
    sizes: dict                # what the model was sized by (input_shape, vocab_size, ...)
    source_vocab: object = None  # translation: the input side's Symbols

    def classify(self, text: str) -> tuple[str, float]:
        """(label, probability) of a sentence for a many-to-one text classifier."""
        ids = self.vocab.encode(text)[: self.config["max_length"] or None] or [0]
        tokens = np.zeros((1, max(len(ids), 1)), np.int32)
        tokens[0, :len(ids)] = ids
        logits = self.module.apply({"params": self.params}, tokens, np.array([len(ids)]))
        probs = np.asarray(jax.nn.softmax(logits[0]))
        label = int(probs.argmax())
        names = SENTIMENT_NAMES if len(probs) == 2 else [str(i) for i in range(len(probs))]
        return names[label], float(probs[label])

    def translate(self, text: str) -> str:
        """The target text for a source text (e.g. '1234'), by greedy decoding."""
        max_length = self.sizes["input_shape"][0]
        if self.source_vocab == sequence_tasks.NUMBER_SOURCE:
            digits = text.strip()
            if not (digits.isascii() and digits.isdigit() and 1 <= len(digits) <= max_length):
                raise ValueError(f"this run translates whole numbers 0..9999 written in "
                                 f"digits, got {text!r}")
        ids = self.source_vocab.encode(text.strip())[:max_length]
        if not ids:
            raise ValueError(f"nothing to translate in {text!r}")
        source = np.zeros((1, max_length), np.int32)
        source[0, :len(ids)] = ids
        out = generate(self.module, self.params,
                       {"source": source, "source_lengths": np.array([len(ids)])},
                       max(8, 2 * max_length))  # decode() stops reading at EOS
        return self.vocab.decode(out[0])

    def caption(self, image: np.ndarray) -> str:
        """Words for an image <float>[H, W, 1] in [0, 1] (a strip of digits)."""
        out = generate(self.module, self.params, {"image": image[None].astype(np.float32)}, 6)
        return self.vocab.decode(out[0])

    def sample(self, count: int = 3, temperature: float = 0.8, seed: int = 0) -> list[str]:
        return sample_text(self.module, self.params, self.vocab, count=count,
                           temperature=temperature, seed=seed,
                           length=self.config["max_length"] or 256)


def read_strip(path: str, shape: tuple) -> np.ndarray:
    """A PNG of white-on-black digits as <float32>[H, W, 1] in [0, 1], scaled to height
    H and padded with black on the right to width W (or squeezed if wider)."""
    from PIL import Image, UnidentifiedImageError
    height, width = shape[:2]
    try:
        img = Image.open(path)
    except (OSError, UnidentifiedImageError) as e:  # missing, or not an image
        raise ValueError(f"cannot read {path} as an image ({getattr(e, 'strerror', None) or e}):"
                         " give a PNG of white-on-black digits") from None
    with img:
        img = img.convert("L")
        new_width = max(1, round(img.width * height / img.height))
        img = img.resize((min(new_width, width), height))
        pixels = np.asarray(img, np.float32) / 255.0
    strip = np.zeros((height, width, 1), np.float32)
    strip[:, :pixels.shape[1], 0] = pixels
    return strip


def write_strip(path: str, image: np.ndarray) -> None:
    from PIL import Image
    try:
        Image.fromarray((np.clip(image[..., 0], 0, 1) * 255).astype(np.uint8)).save(path)
    except OSError as e:
        raise ValueError(f"cannot write {path} ({e.strerror or e}): give a writable path") from None


def eval_strip(run: Run, index: int) -> tuple[np.ndarray, str]:
    """Test strip `index` of a captioning run's dataset and its true caption."""
    from jaxnets import data
    dataset = data.get_dataset(run.config["dataset"], batch_size=1,
                               data_dir=run.config["data_dir"] or None)
    if not 0 <= index < dataset.num_eval:
        raise ValueError(f"--eval_example={index} is outside 0..{dataset.num_eval - 1}")
    return dataset.eval["image"][index], run.vocab.decode(dataset.eval["targets"][index])


def load_run(workdir: str) -> Run:
    """The config, model, newest parameters and vocabulary of a finished run."""
    from jaxnets.train.model_api import FlaxModel, build_model
    from jaxnets.train.rundir import CONFIG, MODEL, SOURCE_VOCAB, VOCAB, RunDir

    run = RunDir(workdir, primary=False)  # reads only
    config, spec = run.read_json(CONFIG), run.read_json(MODEL)
    sizes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["sizes"].items()}
    model = build_model(spec["model"], model_kwargs=spec["model_kwargs"], **sizes,
                        dtype=None if spec["dtype"] == "float32" else jnp.dtype(spec["dtype"]))
    if not isinstance(model, FlaxModel):
        raise ValueError(f"{workdir}: prediction needs a Flax module, got {model!r}")
    params = jax.tree.map(jnp.asarray, run.restore_params())
    return Run(workdir, config, model.module, params, run.read_vocab(VOCAB), sizes,
               run.read_vocab(SOURCE_VOCAB))
