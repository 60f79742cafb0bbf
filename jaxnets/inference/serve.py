"""Runs a jaxnets export with jax and numpy alone: `python serve.py EXPORT_DIR [FILE.npy]`.

Texts (or numbers) are read one per line from stdin, images from .npy files (uint8
[N, H, W, C] at the model's input size for classifiers, float32 in [0, 1] for captions);
one JSON line per input is printed. Or, from Python: `manifest, run = load(folder)`.
"""
import json, re, sys  # noqa: E401
import numpy as np
from jax import export


def load(folder):
    """(manifest, run): run(*arrays) -> the program's outputs as numpy arrays."""
    manifest = json.load(open(f"{folder}/manifest.json", encoding="utf-8"))
    program = export.deserialize(bytearray(open(f"{folder}/program.jax", "rb").read()))
    params = dict(np.load(f"{folder}/params.npz"))

    def run(*arrays):  # a program exported for a fixed batch gets zero rows up to it
        n = len(arrays[0])
        size = manifest["batch_size"] or n
        arrays = [np.concatenate([a, np.zeros((-n % size, *a.shape[1:]), a.dtype)]) for a in arrays]
        outs = [program.call(params, *(a[i:i + size] for a in arrays)) for i in range(0, len(arrays[0]), size)]
        return [np.concatenate(o)[:n] for o in zip(*(o if isinstance(o, tuple) else (o,) for o in outs))]
    return manifest, run


def encode(text, t):
    """Token ids of `text` by the manifest's `text` rule, cut to its max_length."""
    text = str(int(text)) if t["numbers"] else text.strip()
    pieces = list(text) if t["unit"] == "chars" else re.findall(t["token"], re.sub(t["break"], " ", text.lower()))
    ids = {token: i for i, token in enumerate(t["vocab"])}
    return [ids.get(p, t["unknown"]) for p in pieces][:t["max_length"]]


def decode(ids, o):
    """The output vocabulary's words for `ids`, up to its EOS."""
    ids = list(ids) + [o["eos"]]
    return o["sep"].join(o["vocab"][i] for i in ids[:ids.index(o["eos"])] if i > o["eos"])


def main(folder, *files):
    manifest, run = load(folder)
    task, t, o = manifest["task"], manifest.get("text"), manifest.get("output")
    if task == "sample":
        given = [str(s) for s in range(int(files[0]) if files else 3)]
        answers = [(decode(ids, o), None) for ids in run(np.arange(len(given), dtype=np.int32))[0]]
    elif t:
        given = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        ids = [encode(line, t) for line in given]
        tokens = np.zeros((len(ids), max(map(len, ids))), np.int32)
        for row, seq in enumerate(ids):
            tokens[row, :len(seq)] = seq
        outs = run(tokens, np.array([len(s) for s in ids], np.int32))
    else:
        arrays = [np.load(f) for f in files]
        given = [f"{f}[{i}]" for f, a in zip(files, arrays) for i in range(len(a))]
        outs = run(np.concatenate(arrays))
    if task.startswith("classify"):
        answers = [(manifest["classes"][p.argmax()], float(p.max())) for p in outs[0]]
    elif task != "sample":
        answers = [(decode(ids, o), float(p)) for ids, p in zip(*outs)]
    for g, (answer, p) in zip(given, answers):
        print(json.dumps({"input": g, "answer": answer, "probability": p}, ensure_ascii=False))


if __name__ == "__main__":
    main(*sys.argv[1:])
