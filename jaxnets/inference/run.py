"""A finished run, loaded for use: every question goes through the batch path (programs.py).

    run = load_run("runs/rnn_sentiment")
    run.classify("a gorgeous, witty film")                # ('positive', 0.761)
    run.classify_batch(texts)                             # [Prediction, ...], same answers
    load_run("runs/rnn_translate").translate("1234")      # 'one thousand two hundred ...'
    load_run("runs/lenet_mnist").classify_image_files(["7.png"], top_k=3)
    load_run("runs/rnn_video").classify_clip_files(["clip.npy", "frames/"])

The single-example helpers are the batch methods on a batch of one, so their answers
are the batch's (tests/test_inference.py checks it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets.data import catalog, digit_video, sequence_tasks
from jaxnets.inference import inputs, programs

SENTIMENT_NAMES = ("negative", "positive")
TASKS = {  # the kind of answer -> the Flax modules that give it (jaxnets.models)
    "classify_text": "RNNClassifier", "classify_images": "SequentialCNN",
    "translate": "Seq2Seq", "caption": "RNNCaptioner", "sample": "RNNLanguageModel",
    "classify_frames": "RNNFrameClassifier"}
CAPTION_LENGTH = 6     # a caption's words at most (4 digits) + EOS + one spare, as trained
DEFAULT_BATCH = 256
LARGE_IMAGE_BATCH = 32  # images above 64x64x3 (AlexNet's 227x227x3): 32 per call
Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One answer: `probability` is the model's for `answer` (a class, or the whole
    generated sequence, or every frame's class); `top` the k most likely classes of a
    classifier, best first; `frames` each frame's class and probability (a frame
    classifier; `answer` joins the classes); `truncated`: the input was cut to the run's
    max_length (tokens, characters, or frames)."""
    answer: str
    probability: float | None
    top: tuple[tuple[str, float], ...] = ()
    truncated: bool = False
    frames: tuple[tuple[str, float], ...] = ()


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
    max_batch: int = 0         # examples per call at most; 0: the task's default
    _batched: dict = dataclasses.field(default_factory=dict, repr=False)

    # -- what the run answers ------------------------------------------------------------

    @property
    def task(self) -> str:
        """classify_text, classify_images, translate, caption, sample or classify_frames."""
        kind = type(self.module).__name__
        for task, module in TASKS.items():
            if kind == module:
                return task
        raise ValueError(f"{self.workdir} holds a {kind} model ({self.config['preset']}): "
                         "prediction answers the presets' models: "
                         f"{', '.join(TASKS.values())}")

    @property
    def max_length(self) -> int:
        """Tokens (characters, frames) per input as trained: longer inputs are cut to it."""
        return int(self.sizes["input_shape"][0])

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """A frame classifier's (H, W, C): what each frame of a clip must be."""
        return tuple(self.sizes["input_shape"][1:])

    def class_names(self) -> list[str]:
        count = int(self.sizes["num_classes"])
        if self.task == "classify_text" and count == 2:
            return list(SENTIMENT_NAMES)
        if self.task == "classify_frames" and count == len(digit_video.CLASS_NAMES):
            return list(digit_video.CLASS_NAMES)
        return [str(i) for i in range(count)]

    def batch_size(self) -> int:
        if self.max_batch:
            return self.max_batch
        if self.task == "classify_images" and np.prod(self.sizes["input_shape"]) > 64 * 64 * 3:
            return LARGE_IMAGE_BATCH
        return DEFAULT_BATCH

    def function(self, temperature: float = 0.8) -> Callable:
        """The task's pure program `(params, *arrays) -> outputs` (programs.py)."""
        task = self.task
        if task == "classify_text":
            return programs.classify_text(self.module)
        if task == "classify_images":
            shape = self.sizes["input_shape"]
            stats = catalog.spec_for(self.config["dataset"]).channel_stats(shape[-1])
            return programs.classify_images(self.module, *stats)
        if task == "translate":
            return programs.translate(self.module, self.translation_length())
        if task == "caption":
            return programs.caption(self.module, CAPTION_LENGTH)
        if task == "classify_frames":
            return programs.classify_frames(self.module)
        return programs.sample(self.module, self.max_length, temperature)

    def translation_length(self) -> int:
        return max(8, 2 * self.max_length)  # Symbols.decode stops at EOS

    def _program(self, temperature: float = 0.8) -> programs.Batched:
        key = (self.task, self.batch_size(), temperature if self.task == "sample" else None)
        if key not in self._batched:
            self._batched[key] = programs.Batched(self.function(temperature), self.params,
                                                  self.batch_size())
        return self._batched[key]

    def _require(self, task: str, asked: str) -> None:
        if self.task != task:
            raise ValueError(f"{self.workdir} holds a {type(self.module).__name__} run "
                             f"({self.config['preset']}): it cannot {asked}")

    # -- classification ------------------------------------------------------------------

    def classify(self, text: str) -> tuple[str, float]:
        """(label, probability) of a sentence for a many-to-one text classifier."""
        prediction = self.classify_batch([text])[0]
        return prediction.answer, prediction.probability

    def classify_batch(self, texts: Sequence[str], *, top_k: int = 1,
                       progress: Progress | None = None) -> list[Prediction]:
        """The label of every text, batched by length (texts longer than max_length are
        cut to it, as in training, and marked `truncated`)."""
        self._require("classify_text", "classify text")
        encoded = [self.vocab.encode(text) for text in texts]
        for i, ids in enumerate(encoded):
            if not ids:
                raise ValueError(f"text {i + 1} ({texts[i]!r}) is empty: give words to "
                                 "classify")
        return self.classify_ids(encoded, top_k=top_k, progress=progress)

    def classify_ids(self, encoded: Sequence[Sequence[int]], *, top_k: int = 1,
                     progress: Progress | None = None) -> list[Prediction]:
        """`classify_batch` of texts tokenized already (`run.vocab.encode`)."""
        self._require("classify_text", "classify text")
        limit, widths = self.max_length, programs.width_buckets(self.max_length)
        cut = [ids[:limit] for ids in encoded]
        order = np.argsort(np.fromiter(map(len, cut), np.int64, len(cut)), kind="stable")
        (probs,) = self._program()(
            len(cut), lambda rows: programs.pad_sequences([cut[i] for i in rows], widths),
            order=order, progress=progress)
        return self._labels(probs, top_k, [len(ids) > limit for ids in encoded])

    def classify_images(self, images: np.ndarray, *, top_k: int = 1,
                        progress: Progress | None = None) -> list[Prediction]:
        """The classes of images <uint8>[N, H, W, C] at the model's input size (see
        `inputs.fit_image`), normalised as in training."""
        self._require("classify_images", "classify images")
        shape = tuple(self.sizes["input_shape"])
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape[1:] != shape:
            raise ValueError(f"images of dtype {images.dtype} and shape {images.shape[1:]}: "
                             f"give uint8 [N, {', '.join(map(str, shape))}] (fit_image)")
        (probs,) = self._program()(len(images), lambda rows: (images[rows],),
                                   progress=progress)
        return self._labels(probs, top_k)

    def classify_image_files(self, paths: Sequence[str], *, top_k: int = 1,
                             ) -> Iterator[tuple[str, Prediction]]:
        """(path, prediction) for each image file, in order, a batch at a time: each is
        fitted to the model's input by training's rule (`inputs.fit_image`)."""
        self._require("classify_images", "classify images")
        shape = tuple(self.sizes["input_shape"])
        read = lambda path: inputs.load_image(path, lambda img: inputs.fit_image(img, shape))  # noqa: E731
        for indices, (probs,) in self._program().chunks(
                len(paths), lambda rows: (np.stack([read(paths[i]) for i in rows]),)):
            yield from zip((paths[i] for i in indices), self._labels(probs, top_k))

    def _labels(self, probs: np.ndarray, top_k: int, truncated=None) -> list[Prediction]:
        if top_k < 1:
            raise ValueError(f"top_k={top_k}: give 1 or more")
        names = self.class_names()
        best = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        chosen = np.take_along_axis(probs, best, axis=1).tolist()
        return [Prediction(names[row[0]], p[0], tuple(zip((names[i] for i in row), p)),
                           bool(truncated[n]) if truncated is not None else False)
                for n, (row, p) in enumerate(zip(best.tolist(), chosen))]

    def classify_clips(self, clips: Sequence[np.ndarray], *,
                       progress: Progress | None = None) -> list[Prediction]:
        """The class of every frame of each clip <float>[T, H, W, C] in [0, 1] (frames as
        the run's frames: `inputs.read_clip`), batched by length. A clip longer than the
        run's frames is cut to them, as training cut it, and marked `truncated`. The
        probability is the product of the frames' (the model's for the whole labelling)."""
        self._require("classify_frames", "classify the frames of clips")
        limit, frame = self.max_length, self.frame_shape
        for i, clip in enumerate(clips):
            if np.ndim(clip) != 4 or tuple(np.shape(clip)[1:]) != frame or not len(clip):
                raise ValueError(f"clip {i + 1} has shape {np.shape(clip)}: give frames "
                                 f"[T >= 1, {', '.join(map(str, frame))}] in [0, 1]")
        cut = [np.asarray(clip[:limit], np.float32) for clip in clips]
        order = np.argsort(np.fromiter(map(len, cut), np.int64, len(cut)), kind="stable")
        widths = programs.width_buckets(limit)
        answers = [None] * len(cut)
        for indices, (probs,) in self._program().chunks(  # chunks differ in width
                len(cut), lambda rows: programs.pad_clips([cut[i] for i in rows], widths),
                order=order):
            for i, p in zip(indices, probs):
                answers[i] = self._frame_labels(p[:len(cut[i])], len(clips[i]) > limit)
            if progress is not None:
                progress(len(indices))
        return answers

    def classify_clip_files(self, paths: Sequence[str]) -> Iterator[tuple[str, Prediction]]:
        """(path, prediction) for each clip: a .npy file of frames or a directory of frame
        images (`inputs.read_clip`), a batch at a time, in order."""
        self._require("classify_frames", "classify the frames of clips")
        for start in range(0, len(paths), self.batch_size()):
            chunk = paths[start:start + self.batch_size()]
            yield from zip(chunk, self.classify_clips(
                [inputs.read_clip(path, self.frame_shape) for path in chunk]))

    def _frame_labels(self, probs: np.ndarray, truncated: bool) -> Prediction:
        names = self.class_names()
        best = probs.argmax(axis=-1)
        chosen = probs[np.arange(len(best)), best]
        frames = tuple((names[c], float(p)) for c, p in zip(best.tolist(), chosen.tolist()))
        return Prediction(" ".join(name for name, _ in frames),
                          float(np.exp(np.log(chosen).sum())), truncated=truncated,
                          frames=frames)

    # -- generation ----------------------------------------------------------------------

    def translate(self, text: str) -> str:
        """The target text for a source text (e.g. '1234'), by greedy decoding."""
        return self.translate_batch([text])[0].answer

    def translate_batch(self, texts: Sequence[str], *, places: Sequence[str] | None = None,
                        progress: Progress | None = None) -> list[Prediction]:
        """Greedy translations with their probabilities. A number_words run takes whole
        numbers 0..9999 in digits (leading zeros dropped); `places` names each input in
        an error (default 'input 1', 'input 2', ...)."""
        self._require("translate", "translate")
        places = places or [f"input {i + 1}" for i in range(len(texts))]
        if self.source_vocab == sequence_tasks.NUMBER_SOURCE:
            texts = inputs.check_numbers(texts, places)
        encoded = [self.source_vocab.encode(text.strip()) for text in texts]
        for place, text, ids in zip(places, texts, encoded):
            if not ids:
                raise ValueError(f"{place}: nothing to translate in {text!r}")
        limit = self.max_length
        cut = [ids[:limit] for ids in encoded]
        ids, probs = self._program()(
            len(cut), lambda rows: programs.pad_sequences([cut[i] for i in rows], (limit,)),
            progress=progress)
        return [Prediction(self.vocab.decode(row), float(p), truncated=len(e) > limit)
                for row, p, e in zip(ids, probs, encoded)]

    def caption(self, image: np.ndarray) -> str:
        """Words for an image <float>[H, W, 1] in [0, 1] (a strip of digits)."""
        return self.caption_batch(image[None])[0].answer

    def caption_batch(self, images: np.ndarray, *, progress: Progress | None = None,
                      ) -> list[Prediction]:
        """Greedy captions of strips <float>[N, H, W, 1] in [0, 1], with probabilities."""
        self._require("caption", "caption images")
        images = np.asarray(images, np.float32)
        ids, probs = self._program()(len(images), lambda rows: (images[rows],),
                                     progress=progress)
        return [Prediction(self.vocab.decode(row), float(p)) for row, p in zip(ids, probs)]

    def caption_files(self, paths: Sequence[str]) -> Iterator[tuple[str, Prediction]]:
        """(path, prediction) for each picture of digits (`inputs.read_strip`), in order."""
        self._require("caption", "caption images")
        shape = tuple(self.sizes["input_shape"])
        for indices, (ids, probs) in self._program().chunks(
                len(paths), lambda rows: (np.stack([inputs.read_strip(paths[i], shape)
                                                    for i in rows]),)):
            yield from ((paths[i], Prediction(self.vocab.decode(row), float(p)))
                        for i, row, p in zip(indices, ids, probs))

    def sample(self, count: int = 3, temperature: float = 0.8, seed: int = 0) -> list[str]:
        """`count` texts; text i draws from seed + i, so it is the same whatever the count."""
        self._require("sample", "sample text")
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ValueError(f"temperature={temperature}: give a finite number > 0")
        seeds = np.arange(seed, seed + count, dtype=np.int64)
        if count and not (0 <= seeds[0] and seeds[-1] < 2**31):
            raise ValueError(f"seed={seed}: give 0 <= seed and seed + count <= 2**31")
        (ids,) = self._program(float(temperature))(
            count, lambda rows: (seeds[rows].astype(np.int32),))
        return [self.vocab.decode(row, sep="") for row in ids] if count else []


def eval_strip(run: Run, index: int) -> tuple[np.ndarray, str]:
    """Test strip `index` of a captioning run's dataset and its true caption."""
    from jaxnets import data  # pylint: disable=g-import-not-at-top
    dataset = data.get_dataset(run.config["dataset"], batch_size=1,
                               data_dir=run.config["data_dir"] or None)
    if not 0 <= index < dataset.num_eval:
        raise ValueError(f"--eval_example={index} is outside 0..{dataset.num_eval - 1}")
    return dataset.eval["image"][index], run.vocab.decode(dataset.eval["targets"][index])


def load_run(workdir: str, max_batch: int = 0) -> Run:
    """The config, model, newest parameters and vocabulary of a finished run."""
    from jaxnets.train.model_api import FlaxModel, build_model  # pylint: disable=g-import-not-at-top
    from jaxnets.train.rundir import CONFIG, MODEL, SOURCE_VOCAB, VOCAB, RunDir  # pylint: disable=g-import-not-at-top

    run = RunDir(workdir, primary=False)  # reads only
    config, spec = run.read_json(CONFIG), run.read_json(MODEL)
    sizes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["sizes"].items()}
    model = build_model(spec["model"], model_kwargs=spec["model_kwargs"], **sizes,
                        dtype=None if spec["dtype"] == "float32" else jnp.dtype(spec["dtype"]))
    if not isinstance(model, FlaxModel):
        raise ValueError(f"{workdir}: prediction needs a Flax module, got {model!r}")
    params = jax.tree.map(jnp.asarray, run.restore_params())
    return Run(workdir, config, model.module, params, run.read_vocab(VOCAB), sizes,
               run.read_vocab(SOURCE_VOCAB), max_batch=max_batch)
